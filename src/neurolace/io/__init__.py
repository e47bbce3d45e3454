"""Readers and writers: WAV, raw interleaved binary, NWB; crash-safe output files."""
