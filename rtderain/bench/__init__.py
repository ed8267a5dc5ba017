"""``rtderain bench``: quality (methods x datasets), engine speed, pipeline overhead.

Subcommands are imported on first use (``rtderain.lazy.LazyGroup``).
"""

from __future__ import annotations

import click

from rtderain.lazy import LazyGroup

SUBCOMMANDS = {
    "quality": "rtderain.bench.quality:quality",
    "speed": "rtderain.bench.speed:speed",
    "pipeline": "rtderain.bench.pipeline:pipeline",
}


@click.group("bench", cls=LazyGroup, lazy=SUBCOMMANDS)
def bench() -> None:
    """Benchmarks: quality table, engine speed, pipeline overhead."""
