"""dsp package."""
