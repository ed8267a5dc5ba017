"""Memory budget: how large an engine (frame or tile size, batch) may be built and run.

The network's activations grow with the frame's pixels times the batch: the default model
at 3840x2160 and a batch of 4 would need about 30 GB. Each engine is therefore planned
against a budget (``--max-memory``, default :func:`default_budget`): the batch is lowered
until the engine fits; a frame that does not fit even alone is tiled
(:mod:`rtderain.media.tiling`); a setting that cannot fit (``--tile off`` on a frame too
large, a tile or a budget too small) is refused with one line before any work.

The estimate is per padded pixel and frame, fitted to measured peak resident memory
(``tools/engine_footprint.py``; the readings are tabled in docs/memory.md), as a linear
function of the network's width over its space-to-depth area (``channels / s**2``), plus a
fixed overhead per engine.

The coefficients below carry about 15 % margin over those readings. The budget is for the
whole process: :func:`pipeline_bytes` (the interpreter and runtimes, and the frames in
flight: decode and encode queues, batches, the temporal window, the encoder's own) is
taken off before the engine is planned.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from rtderain.errors import RTDerainError
from rtderain.models.mgid import ModelConfig
from rtderain.util import round_up

GIB = 1 << 30
# bytes per padded pixel and frame = A + B * channels / space_to_depth**2 (see above)
_COEFF = {"fp32": (147.0, 25.8), "half": (100.0, 12.5), "int8": (95.0, 6.4),
          "int8-build": (590.0, 78.0)}
ENGINE_OVERHEAD = 300 << 20
PROCESS_BASE = 400 << 20  # Python, torch, OpenVINO, PyAV loaded
FRAMES_IN_FLIGHT = 48  # RGB frames' worth held outside the engine (measured at 4K: ~45)
DEFAULT_SHARE = 0.4  # of the machine's memory, for the whole run
MIN_TILE = 128
MAX_TILE = 4096
OVERLAP = 128  # px between tiles (tools/tile_seams.py: max 4 levels from untiled; 64 px: 7)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length`` with >= ``overlap``."""
    if tile >= length:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _tiled_pixels(h: int, w: int, th: int, tw: int) -> int:
    overlap = min(OVERLAP, min(th, tw) // 4)
    return len(tile_starts(h, th, overlap)) * len(tile_starts(w, tw, overlap)) * th * tw


def best_tile(h: int, w: int, multiple: int, fits) -> tuple[int, int] | None:
    """The tile shape that fits (``fits(th, tw)``) and computes the fewest pixels for an
    ``h`` x ``w`` frame (ties: the larger tile); None if not even the smallest fits."""
    candidates = []
    for rows in range(1, max(h // MIN_TILE, 1) + 1):
        th = min(h, max(MIN_TILE, round_up(-(-(h + (rows - 1) * OVERLAP) // rows), multiple)))
        widths = range(min(w, MAX_TILE) // multiple * multiple, MIN_TILE - 1, -multiple)
        tw = next((t for t in widths if fits(th, t)), 0)
        if tw:
            candidates.append((_tiled_pixels(h, w, th, tw), -th * tw, (th, tw)))
    return min(candidates)[2] if candidates else None


def total_memory() -> int:
    """Physical memory, or the cgroup's limit where that is lower (containers)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_budget() -> int:
    """The run's budget when none is given: 40 % of :func:`total_memory`, >= 1 GiB."""
    return max(GIB, int(total_memory() * DEFAULT_SHARE))


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": GIB, "t": 1 << 40}


def parse_memory(text: str | int | None, where: str = "--max-memory") -> int:
    """``8G``, ``1.5GiB``, ``512M``, ``auto`` (or None) -> bytes (binary units)."""
    if text is None or text == "auto":
        return default_budget()
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
        if not m:
            raise RTDerainError(f"{where} {text!r}: expected a size such as 8G, 512M or auto")
        value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value < 256 << 20:
        raise RTDerainError(f"{where} {text}: at least 256M")
    if value > total_memory():
        raise RTDerainError(f"{where} {text} is more than this machine's "
                            f"{gib(total_memory())} of memory")
    return value


def gib(n: float) -> str:
    """A size for messages: ``1.5 GiB``, ``300 MiB``."""
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / (1 << 20):.0f} MiB"


def pipeline_bytes(height: int, width: int) -> int:
    """Estimated bytes a run holds besides its engine, for frames of this size."""
    return PROCESS_BASE + FRAMES_IN_FLIGHT * height * width * 3


def engine_bytes(config: ModelConfig, precision: str, pixels: int, batch: int) -> int:
    """Estimated peak bytes of one engine at ``pixels`` (padded) x ``batch``.

    ``precision`` is what the engine's build needs most: ``fp32``, ``bf16``/``fp16``,
    ``int8`` (running an int8 graph) or ``int8-build`` (its calibration, the peak).
    """
    key = "half" if precision in ("bf16", "fp16") else precision
    a, b = _COEFF[key]
    per_px = a + b * config.channels / config.space_to_depth**2
    return ENGINE_OVERHEAD + int(per_px * pixels * batch)


def parse_tile(text: str | int) -> int | None:
    """``auto`` -> None (the planner chooses), ``off`` -> 0, ``N`` -> N (>= 128)."""
    if text in ("auto", None):
        return None
    if text == "off":
        return 0
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise RTDerainError(f"--tile {text!r}: expected auto, off or a size in pixels") from None
    if value != 0 and not MIN_TILE <= value <= MAX_TILE:
        raise RTDerainError(f"--tile {value}: between {MIN_TILE} and {MAX_TILE} (or off)")
    return value


@dataclass(frozen=True)
class EnginePlan:
    """What to build for frames of one size.

    Attributes:
        size: padded (H, W) of the engine: the frame's, or one tile's.
        batch: frames (untiled) or tiles per engine call.
        tiled: whether frames are cut into tiles of ``size``.
        try_int8: whether precision ``auto`` may try an int8 build (it fits the budget).
        estimate: estimated peak bytes of the engine.
        rest: estimated bytes of the rest of the run (:func:`pipeline_bytes`).
    """

    size: tuple[int, int]
    batch: int
    tiled: bool
    try_int8: bool
    estimate: int
    rest: int = 0


def plan_engine(config: ModelConfig, precision: str, height: int, width: int, batch: int,
                budget: int, tile: int | None = None, auto: bool = False) -> EnginePlan:
    """The largest engine that fits ``budget`` for (padded) ``height`` x ``width`` frames.

    ``precision`` is the resolved one (``fp32``, ``bf16``, ``fp16``, ``int8``); ``auto``
    says precision ``auto`` chose it, so an int8 try is planned where its build fits.
    ``tile``: None chooses, 0 never tiles, N tiles of N pixels. Raises
    :class:`RTDerainError` (one line) when nothing fits.
    """
    need = "int8-build" if precision == "int8" else precision
    m = config.multiple
    where = f"{config.name} {precision}, frames of {width}x{height}"
    rest = pipeline_bytes(height, width)
    if rest >= budget:
        raise RTDerainError(
            f"--max-memory {gib(budget)} is too small for frames of {width}x{height}: the "
            f"pipeline itself holds about {gib(rest)} of decoded frames and runtimes")
    whole, budget = budget, budget - rest

    def cost(h: int, w: int, b: int = 1) -> int:
        return engine_bytes(config, need, h * w, b)

    def fitting_batch(h: int, w: int, most: int) -> int:
        return next((b for b in range(most, 0, -1) if cost(h, w, b) <= budget), 0)

    shape = None
    if tile is None and cost(height, width) > budget:  # the cheapest tiling that fits
        shape = best_tile(height, width, m, lambda th, tw: cost(th, tw) <= budget)
        if shape is None:
            raise RTDerainError(
                f"--max-memory {gib(whole)} is too small for {config.name} {precision}: "
                f"beside the {gib(rest)} the pipeline holds, even a {MIN_TILE}x{MIN_TILE} tile"
                f" needs about {gib(cost(MIN_TILE, MIN_TILE))}")
    elif tile:
        shape = min(round_up(tile, m), height), min(round_up(tile, m), width)
    if shape:  # tiles of one fixed size, one per call
        th, tw = shape
        if cost(th, tw) > budget:
            raise RTDerainError(
                f"--tile {tile} needs about {gib(cost(th, tw))} for {config.name} {precision},"
                f" over the {gib(budget)} --max-memory {gib(whole)} leaves for the engine: "
                "choose a smaller --tile")
        plan = EnginePlan((th, tw), 1, (th, tw) != (height, width), False, cost(th, tw), rest)
    else:
        b = fitting_batch(height, width, batch)
        if not b:
            raise RTDerainError(
                f"{where} need about {gib(cost(height, width))} untiled (--tile off), over the"
                f" {gib(budget)} --max-memory {gib(whole)} leaves for the engine: allow tiling"
                " or raise --max-memory")
        plan = EnginePlan((height, width), b, False, False, cost(height, width, b), rest)
    if auto:
        build = engine_bytes(config, "int8-build", plan.size[0] * plan.size[1], plan.batch)
        plan = dataclasses.replace(plan, try_int8=build <= budget)
    return plan
