"""Temporal stage: fuses per-frame de-rained frames with their aligned neighbours.

The memory network stays one frame in, one frame out; :class:`TemporalStage` works on its
outputs and the rainy inputs around them (``docs/temporal.md``).
"""

from rtderain.temporal.settings import MODES, TemporalSettings
from rtderain.temporal.stage import TemporalStage

__all__ = ["MODES", "TemporalSettings", "TemporalStage"]
