"""What a de-raining job is: its settings, and the planning that checks every input and
output before any work starts (used by ``rtderain run`` and the Python API)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rtderain.config import from_dict, load_yaml
from rtderain.errors import MediaError, RTDerainError
from rtderain.media.images import IMAGE_SUFFIXES, is_image, list_images
from rtderain.media.reader import VideoReader
from rtderain.media.writer import EncodeOptions


@dataclass(frozen=True)
class RunSettings:
    """The ``run:`` section of a YAML config (see ``configs/run.yaml``); CLI options override it.

    Attributes:
        model: registered model name (``mgid``, ``mgid-rt``).
        weights: checkpoint path; None = the model's shipped weights.
        engine: backend name or ``auto``.
        device: ``cpu``, ``cuda[:N]`` or ``auto``.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``.
        batch: frames per inference call.
        queue_frames: capacity of each frame queue.
        encode: encoder settings.
    """

    model: str = "mgid"
    weights: str | None = None
    engine: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    batch: int = 4
    queue_frames: int = 8
    encode: EncodeOptions = field(default_factory=EncodeOptions)


def load_run_settings(path: str | Path | None) -> RunSettings:
    """The ``run:`` section of the YAML file ``path`` (or the whole file); defaults if None."""
    if path is None:
        return RunSettings()
    data = load_yaml(path)
    return from_dict(RunSettings, data.get("run", data), where=f"{path}: run")


@dataclass(frozen=True)
class Job:
    """One input -> one output; ``kind`` is ``video``, ``image`` or ``folder``."""

    source: Path
    target: Path
    kind: str


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
    jobs = []
    for raw in inputs:
        src = Path(raw)
        if not src.exists():
            raise MediaError(f"input not found: {src}")
        kind = "folder" if src.is_dir() else "image" if is_image(src) else "video"
        if kind == "folder":
            list_images(src)  # an empty folder is an error now, not after other jobs
        elif kind == "video":
            VideoReader(src).close()  # not a video / no video stream: fail before any work
        target = Path(output) if output else Path(out_dir) / src.name  # type: ignore[arg-type]
        if kind == "image" and target.suffix.lower() not in IMAGE_SUFFIXES:
            raise RTDerainError(f"{target}: an image input needs an image output (.png, .jpg, ...)")
        if target.exists() and src.resolve() == target.resolve():
            raise RTDerainError(f"output {target} is the input itself; choose another name")
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
        jobs.append(Job(src, target, kind))
    return jobs
