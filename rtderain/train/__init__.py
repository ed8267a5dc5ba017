"""Training on time-lapse clips: clip data, losses, loop, checkpoints, DDP."""
