"""rtderain: remove rain streaks from video with a memory-guided de-raining network."""

__version__ = "0.1.0"
