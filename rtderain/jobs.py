"""What a de-raining job is: its settings, and the planning that checks every input and
output before any work starts (used by ``rtderain run`` and the Python API)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rtderain import resources
from rtderain.config import check_range, from_dict, load_yaml
from rtderain.errors import ConfigError, MediaError, RTDerainError
from rtderain.media.images import IMAGE_SUFFIXES, check_images, is_image, list_images
from rtderain.media.orient import parse_orient
from rtderain.media.reader import VideoReader
from rtderain.media.writer import EncodeOptions, check_copies
from rtderain.temporal import TemporalSettings

# The temporal mode of files and frame folders by default (docs/temporal.md has the
# measurements behind it); live sources are causal at most.
FILE_DEFAULT = "window"


@dataclass(frozen=True)
class RunSettings:
    """The ``run:`` section of a YAML config (see ``configs/run.yaml``); CLI options override it.

    Attributes:
        model: registered model name (``mgid``, ``mgid-rt``).
        weights: checkpoint path; None = the model's shipped weights.
        engine: backend name or ``auto``.
        device: ``cpu``, ``cuda[:N]`` or ``auto``.
        precision: ``fp32``, ``bf16``, ``fp16``, ``int8`` or ``auto``.
        batch: frames per inference call.
        queue_frames: capacity of each frame queue.
        encode: encoder settings.
        temporal: the temporal stage after the network (``temporal: {mode: window,
            radius: 2}``; see ``docs/temporal.md``).
        max_memory: the run's memory budget (``8G``, ``512M``, ``auto``; see
            :mod:`rtderain.resources`).
        tile: ``auto``, ``off`` or a tile size in pixels (:mod:`rtderain.media.tiling`).
        orient: ``auto``, ``off`` or a streak angle in degrees (:mod:`rtderain.media.orient`).
    """

    model: str = "mgid"
    weights: str | None = None
    engine: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    batch: int = 4
    queue_frames: int = 8
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    temporal: TemporalSettings = field(default_factory=lambda: TemporalSettings(FILE_DEFAULT))
    max_memory: str | int = "auto"
    tile: str | int = "auto"
    orient: str | float = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "orient", parse_orient(self.orient))
        check_range("batch", self.batch, 1, 256)
        try:
            resources.parse_memory(self.max_memory, "max_memory")
            resources.parse_tile(self.tile)
        except RTDerainError as exc:
            raise ConfigError(str(exc)) from None
        check_range("queue_frames", self.queue_frames, 1, 1024)  # 0 would be unbounded


# The sections a config file for `run` may hold beside `run:` (`rtderain stream` reads its own).
SECTIONS = ("run", "stream")


def load_run_settings(path: str | Path | None) -> RunSettings:
    """The ``run:`` section of the YAML file ``path`` (or the whole file); defaults if None.
    Beside ``run:`` only the sections of :data:`SECTIONS` may appear."""
    if path is None:
        return RunSettings()
    data = load_yaml(path)
    if "run" not in data:
        return from_dict(RunSettings, data, where=f"{path}: run")
    unknown = sorted(set(data) - set(SECTIONS), key=str)
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key {unknown[0]!r} (known: {', '.join(SECTIONS)})"
        )
    return from_dict(RunSettings, data["run"], where=f"{path}: run")


@dataclass(frozen=True)
class Job:
    """One input -> one output; ``kind`` is ``video``, ``image`` or ``folder``.

    ``overwrite``: the output may replace an existing file (``--overwrite``); without it the
    final rename never replaces one, even one that appeared during the run.
    """

    source: Path
    target: Path
    kind: str
    overwrite: bool = False


def plan_jobs(
    inputs: tuple[str, ...], output: str | None, out_dir: str | None, overwrite: bool
) -> list[Job]:
    """Check every input and output before any work starts; errors name the bad path."""
    if not inputs:
        raise RTDerainError("no input given (usage: rtderain INPUT -o OUTPUT)")
    if output and out_dir:
        raise RTDerainError("give either -o/--output or --out-dir, not both")
    if len(inputs) > 1 and not out_dir:
        raise RTDerainError(f"{len(inputs)} inputs need --out-dir (-o takes a single input)")
    if not output and not out_dir:
        raise RTDerainError("no output given: use -o OUTPUT (or --out-dir DIR)")
    jobs: list[Job] = []
    for raw in inputs:
        src = Path(raw)
        if not src.exists():
            raise MediaError(f"input not found: {src}")
        kind = "folder" if src.is_dir() else "image" if is_image(src) else "video"
        if kind == "folder":
            # An empty folder or an unreadable image is an error now, not after other jobs.
            check_images(list_images(src))
        target = Path(output) if output else Path(out_dir) / src.name  # type: ignore[arg-type]
        if kind == "video":  # not a video, no video stream, a stream the output cannot hold
            reader = VideoReader(src)
            try:
                check_copies(reader.copy_streams, target)
            finally:
                reader.close()
        if kind == "image" and target.suffix.lower() not in IMAGE_SUFFIXES:
            raise RTDerainError(f"{target}: an image input needs an image output (.png, .jpg, ...)")
        if target.exists() and src.resolve() == target.resolve():
            raise RTDerainError(f"output {target} is the input itself; choose another name")
        if kind != "folder" and target.is_dir():
            raise RTDerainError(f"output {target} is a folder; give a file name")
        if target.exists() and not overwrite and kind != "folder":
            raise RTDerainError(f"output exists: {target} (use --overwrite to replace it)")
        # Folders we create (--out-dir, a folder output) need an existing parent.
        parent = target if kind == "folder" else target.parent
        creatable = kind == "folder" or (out_dir is not None and parent == Path(out_dir))
        existing = parent
        while creatable and not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise RTDerainError(f"output folder does not exist: {existing}")
        if not os.access(existing, os.W_OK):
            raise RTDerainError(f"output folder is not writable: {existing}")
        jobs.append(Job(src, target, kind, overwrite))
    _check_collisions(jobs)
    return jobs


def _check_collisions(jobs: list[Job]) -> None:
    """Two inputs with one output (``a/clip.mp4 b/clip.mp4 --out-dir out``, or an input
    given twice), or an output that is another job's input: refuse before any work."""
    seen: dict[Path, Job] = {}
    sources = {job.source.resolve(): job for job in jobs}
    for job in jobs:
        key = job.target.resolve()
        if key in seen:
            raise RTDerainError(
                f"inputs {seen[key].source} and {job.source} would both be written to "
                f"{job.target}; de-rain them in separate runs or rename one"
            )
        if key in sources and sources[key] is not job:
            raise RTDerainError(
                f"output {job.target} of {job.source} is another input; choose another --out-dir"
            )
        seen[key] = job
