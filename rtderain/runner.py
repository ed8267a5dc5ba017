"""Runs de-raining jobs (videos, images, folders) with one loaded model and cached engines."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtderain.backends import create_engine
from rtderain.backends.base import Engine
from rtderain.errors import RTDerainError
from rtderain.media.frames import derain_frames
from rtderain.media.images import list_images, read_image, write_image
from rtderain.media.reader import VideoReader
from rtderain.models.checkpoint import load_model
from rtderain.pipeline import PipelineOptions, derain_video
from rtderain.run import Job, RunConfig

log = logging.getLogger(__name__)


class Runner:
    """Load the model once; build one engine per padded frame size; run jobs.

    ``notify`` receives one line per engine chosen (which backend runs and why).
    """

    def __init__(
        self, cfg: RunConfig, quiet: bool = False, notify: Callable[[str], None] | None = None
    ) -> None:
        self.cfg = cfg
        self.quiet = quiet
        self.notify = notify
        self.model = load_model(cfg.model if cfg.weights is None else None, cfg.weights)
        if cfg.weights is None and getattr(self.model, "weights_path", None) is None:
            log.warning(
                "model %s has no shipped weights: running an untrained network (identity)",
                cfg.model,
            )
        self._engines: dict[tuple[int, int, int], Engine] = {}

    def engine(self, height: int, width: int, batch: int) -> Engine:
        m = self.model.multiple
        key = (-(-height // m) * m, -(-width // m) * m, batch)
        if key not in self._engines:
            eng = create_engine(
                self.model,
                engine=self.cfg.engine,
                device=self.cfg.device,
                precision=self.cfg.precision,
                size=key[:2],
                batch=batch,
            )
            log.info("engine for %dx%d: %s", key[1], key[0], eng.description)
            if self.notify and getattr(eng, "selection", None):
                self.notify(f"engine for {key[1]}x{key[0]}: {eng.selection}")
            self._engines[key] = eng
        return self._engines[key]

    def run(self, job: Job, overwrite: bool = False) -> str:
        """Run one job; returns its one-line summary."""
        if job.kind == "video":
            return self._video(job)
        if job.kind == "image":
            self._image(job.source, job.target)
            return f"{job.target}: 1 image"
        return self._folder(job, overwrite)

    def _video(self, job: Job) -> str:
        probe = VideoReader(job.source)
        size, total = (probe.height, probe.width), probe.frame_count
        probe.close()
        engine = self.engine(*size, self.cfg.batch)
        opts = PipelineOptions(
            batch=self.cfg.batch, queue_frames=self.cfg.queue_frames, encode=self.cfg.encode
        )
        with tqdm(
            total=total or None,
            unit="frame",
            desc=job.source.name,
            disable=self.quiet,
            dynamic_ncols=True,
            leave=False,
        ) as bar:

            def progress(done: int, _total: int) -> None:
                bar.update(done - bar.n)

            summary = derain_video(job.source, job.target, engine, opts, progress)
        return summary.line()

    def _derain_array(self, rgb: np.ndarray) -> np.ndarray:
        engine = self.engine(rgb.shape[0], rgb.shape[1], 1)
        return derain_frames(engine, rgb[None])[0]

    def _image(self, src: Path, dst: Path) -> None:
        write_image(dst, self._derain_array(read_image(src)))

    def _folder(self, job: Job, overwrite: bool) -> str:
        files = list_images(job.source)
        job.target.mkdir(parents=True, exist_ok=True)
        clashes = [job.target / f.name for f in files if (job.target / f.name).exists()]
        if clashes and not overwrite:
            raise RTDerainError(f"output exists: {clashes[0]} (use --overwrite to replace it)")
        for f in tqdm(files, unit="image", desc=job.source.name, disable=self.quiet, leave=False):
            self._image(f, job.target / f.name)
        return f"{job.target}: {len(files)} images"
