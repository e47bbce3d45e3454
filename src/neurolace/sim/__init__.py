"""Seeded simulators: the N1-like implant and the closed-loop participant."""
