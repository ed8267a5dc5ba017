"""Synthetic rainy time-lapse clips from clean footage (``rtderain synth``)."""
