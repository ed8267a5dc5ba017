"""The Python API: :class:`Derainer` de-rains frames, images, folders and videos.

>>> import numpy as np, rtderain
>>> derainer = rtderain.Derainer("mgid-rt", engine="torch", device="cpu")
>>> frame = np.zeros((90, 160, 3), np.uint8)          # (H, W, 3) uint8 RGB
>>> derainer(frame).shape
(90, 160, 3)

A :class:`Derainer` loads the network once and keeps one engine per padded frame size (an
ONNX Runtime / OpenVINO / TensorRT engine is built for a fixed shape, and cached on disk
under the engine cache, see ``docs/engines.md``). The command line (``rtderain run``) is a
thin shell around this class.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from rtderain import resources
from rtderain.backends import create_engine
from rtderain.backends.base import Engine
from rtderain.backends.registry import resolve_device, resolve_precision
from rtderain.errors import RTDerainError
from rtderain.jobs import Job, RunSettings
from rtderain.media.batching import derain_frames
from rtderain.media.images import check_images, list_images, read_picture, write_picture
from rtderain.media.orient import oriented, parse_orient
from rtderain.media.reader import VideoReader
from rtderain.media.tiling import tiled
from rtderain.media.transcode import PipelineOptions, Summary, derain_video
from rtderain.media.writer import EncodeOptions, check_container
from rtderain.models.checkpoint import load_model
from rtderain.temporal import TemporalSettings, TemporalStage
from rtderain.util import padded_size

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class Derainer:
    """De-rain with one loaded network.

    Args:
        model: registered model name: ``mgid`` (the paper model, the default),
            ``mgid-rt`` (real time) or ``mgid-lite`` (luma, real time at 1080p; video
            runs in the decoder's planes, ``docs/realtime.md``); see :func:`list_models`.
        weights: a checkpoint file instead of the model's shipped weights (the file names
            its architecture; when ``model`` is given too, they must match).
        engine: ``auto`` (fastest available for the device) or a backend name from
            :func:`list_engines`. A named engine that cannot run is an error, not a fallback.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto``, ``fp32``, ``bf16``, ``fp16`` or ``int8`` (OpenVINO).
        batch: frames per inference call for :meth:`frames` and :meth:`video`
            (throughput only: the network is one frame in, one frame out).
        temporal: the temporal stage after the network for streams, videos and frame
            folders: ``off`` (every frame on its own), ``window`` (a centred window of
            past and future frames; files), ``causal`` (past frames only; live), or a
            :class:`rtderain.temporal.TemporalSettings`. Single frames and images never
            use it.
        max_memory: the run's memory budget (bytes, or ``8G``, ``512M``; ``auto``/None:
            :func:`rtderain.resources.default_budget`): the batch is lowered, and frames too
            large are tiled, until each engine fits beside the frames in flight; what cannot
            fit is an error.
        tile: ``auto`` (tile only frames that do not fit), ``off`` or a tile size in
            pixels (tiles overlap and are blended: :mod:`rtderain.media.tiling`).
        orient: ``auto`` (default: where a frame's rain clearly falls 15-40 degrees from
            vertical, the frame is turned so that it falls vertically for the network,
            and the rain layer turned back: :mod:`rtderain.media.orient`), ``off``, or a
            fixed streak angle in degrees (positive: leaning like ``/``).
        orient_every: ``auto`` estimates the angle on the first frame of every call (1),
            or every ``orient_every`` frames (a live source: the angle changes slowly).
        notify: called with one line per engine chosen (which backend runs and why).
        engines_dir, engine_settings: the engine cache folder and per-backend settings
            (threads), as :func:`rtderain.backends.create_engine` takes them.

    Frames are numpy ``(H, W, 3)`` arrays, **RGB** order, ``uint8`` in [0, 255] (or
    ``uint16`` in [0, 65535] for deeper sources); any size (padded to the network's
    multiple and cropped back). Outputs have the input's shape and dtype.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        weights: str | Path | None = None,
        engine: str = "auto",
        device: str = "auto",
        precision: str = "auto",
        batch: int = 4,
        temporal: str | TemporalSettings = "off",
        max_memory: int | str | None = None,
        tile: int | str = "auto",
        orient: str | float = "auto",
        orient_every: int = 1,
        notify: Callable[[str], None] | None = None,
        engines_dir: str | Path | None = None,
        engine_settings: dict[str, Any] | None = None,
    ) -> None:
        if batch < 1:
            raise RTDerainError(f"batch must be >= 1, got {batch}")
        self.budget = resources.parse_memory(max_memory)
        self.tile = resources.parse_tile(tile)
        if model is None and weights is None:
            model = "mgid"
        self.network = load_model(model, weights)
        self.settings = RunSettings(
            model=self.network.config.name,
            weights=None if weights is None else str(weights),
            engine=engine,
            device=device,
            precision=precision,
            batch=batch,
            temporal=temporal if isinstance(temporal, TemporalSettings)
            else TemporalSettings(temporal),
            max_memory=str(max_memory or "auto"),
            tile=str(tile),
            orient=parse_orient(orient),
        )
        self.notify = notify
        self.orient_every = orient_every
        self._engine_args = {"engines_dir": engines_dir, "settings": engine_settings}
        if weights is None and self.network.weights_path is None:
            log.warning("model %s has no shipped weights: running an untrained network", model)
        self._engines: dict[tuple[int, int, int], Engine] = {}
        self._built_engines: dict[tuple[int, int, int], Engine] = {}
        self._oriented: dict[tuple[int, int, int], Engine] = {}

    @classmethod
    def from_settings(
        cls, settings: RunSettings, notify: Callable[[str], None] | None = None, **kwargs: Any
    ) -> Derainer:
        """A Derainer for the ``run:`` settings of a YAML config (``configs/run.yaml``);
        ``kwargs``: ``engines_dir``, ``engine_settings``."""
        return cls(
            settings.model if settings.weights is None else None,
            weights=settings.weights,
            engine=settings.engine,
            device=settings.device,
            precision=settings.precision,
            batch=settings.batch,
            temporal=settings.temporal,
            max_memory=settings.max_memory,
            tile=settings.tile,
            orient=settings.orient,
            notify=notify,
            **kwargs,
        )

    @property
    def model(self) -> str:
        """The name of the network that runs (from the weights file when one was given)."""
        return self.network.config.name

    def engine_for(self, height: int, width: int, batch: int = 1) -> Engine:
        """The engine for frames of ``height`` x ``width`` (built or loaded on first use),
        planned against the memory budget: a lower batch, or tiles, where the frame size
        and ``batch`` would not fit (:func:`rtderain.resources.plan_engine`). With
        ``orient`` on, it turns frames whose rain falls at an angle (the canvas engine is
        planned the same way, on first use)."""
        key = (*padded_size(height, width, self.network.multiple), batch)
        if key not in self._oriented:
            self._oriented[key] = oriented(
                self._planned(*key), lambda h, w: self._planned(h, w, batch),
                self.settings.orient, self.orient_every)
        return self._oriented[key]

    def _planned(self, height: int, width: int, batch: int) -> Engine:
        """The engine for padded frames of ``height`` x ``width``, fitted to the budget."""
        key = (height, width, batch)
        if key not in self._engines:
            s = self.settings
            dev = resolve_device(s.device)
            prec = resolve_precision(s.precision, dev)
            plan = resources.plan_engine(self.network.config, prec, *key, self.budget,
                                         self.tile, auto=s.precision == "auto")
            eng = self._built(plan)
            fitted = plan.tiled or plan.batch < batch
            if fitted:  # tiles, or frames a few at a time (torch takes any batch at once)
                inner = eng
                eng = tiled(inner, plan.size, chunk=plan.batch)
                if not plan.tiled:
                    eng.description = f"{inner.description}, {plan.batch} frames per call"
            line = (f"frames of {key[1]}x{key[0]}: " + (
                f"tiles of {plan.size[1]}x{plan.size[0]}" if plan.tiled
                else f"batch {batch} -> {plan.batch}") + f", engine about "
                f"{resources.gib(plan.estimate)} + {resources.gib(plan.rest)} for the rest, "
                f"of --max-memory {resources.gib(self.budget)}")
            log.log(logging.WARNING if fitted else logging.INFO, "%s", line)
            self._engines[key] = eng
        return self._engines[key]

    def _built(self, plan: resources.EnginePlan) -> Engine:
        """One engine per planned (size, batch), shared by every frame size using it."""
        key = (*plan.size, plan.batch)
        if key not in self._built_engines:
            s = self.settings
            eng = create_engine(self.network, engine=s.engine, device=s.device,
                                precision=s.precision, size=plan.size, batch=plan.batch,
                                try_int8=plan.try_int8, **self._engine_args)
            log.info("engine for %dx%d: %s", key[1], key[0], eng.description)
            if self.notify is not None and eng.selection:
                self.notify(f"engine for {key[1]}x{key[0]}: {eng.selection}")
            self._built_engines[key] = eng
        return self._built_engines[key]

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """De-rain one frame: ``(H, W, 3)`` uint8 (or uint16) RGB -> same shape and dtype."""
        _check_frame(frame, 0)
        return derain_frames(self.engine_for(*frame.shape[:2]), frame[None])[0]

    def frames(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """De-rain a stream of frames, yielding one output per input, in order.

        Consecutive frames of one size and dtype are batched (``batch`` at a time); a size
        change starts a new batch, so frames of different sizes may be mixed. With the
        temporal stage the frames are one video, in order (``window`` looks ``radius``
        frames ahead before it yields). Memory stays bounded by one batch plus the stage's
        window whatever the stream's length.
        """
        stage = None if self.settings.temporal.mode == "off" else TemporalStage(
            settings=self.settings.temporal
        )
        pending: list[np.ndarray] = []
        for i, frame in enumerate(frames):
            _check_frame(frame, i)
            if pending and (frame.shape != pending[0].shape or frame.dtype != pending[0].dtype):
                yield from self._run(pending, stage)
                pending = []
            pending.append(frame)
            if len(pending) == self.settings.batch:
                yield from self._run(pending, stage)
                pending = []
        if pending:
            yield from self._run(pending, stage)
        if stage is not None:
            for out, _ in stage.flush():
                yield out

    def _run(self, batch: list[np.ndarray], stage: TemporalStage | None) -> Iterator[np.ndarray]:
        h, w = batch[0].shape[:2]
        engine = self.engine_for(h, w, self.settings.batch)
        outputs = derain_frames(engine, batch)
        if stage is None:
            yield from outputs
            return
        for rainy, out in zip(batch, outputs, strict=True):
            for final, _ in stage.push(rainy, out):
                yield final

    def video(
        self,
        src: str | Path,
        dst: str | Path,
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
        queue_frames: int = 8,
        strict: bool = False,
        **encode_options: Any,
    ) -> Summary:
        """De-rain the video file ``src`` into ``dst``; returns what was done.

        Every decodable frame is written with its source timestamp; audio and subtitle
        streams are copied as packets; colour matrix, range and bit depth are kept. The
        output is written under a hidden temporary name and renamed when complete, so an
        error leaves nothing at ``dst``. ``encode_options`` are fields of
        :class:`rtderain.media.writer.EncodeOptions`: ``codec`` (``h264``, ``hevc``, ``av1``,
        ``ffv1``, ...), ``crf``, ``preset``, ``pix_fmt``, ``options`` (FFmpeg options).
        ``progress(done, total_estimate)`` is called after each batch. Streams the output
        cannot hold are dropped with a warning each, or with ``strict`` are an error
        before any work (:mod:`rtderain.media.streams`).
        """
        src, dst = Path(src), Path(dst)
        _check_target(src, dst, overwrite)
        encode = _encode_options(encode_options)
        check_container(encode, dst)
        probe = VideoReader(src)
        size = (probe.height, probe.width)
        probe.close()
        engine = self.engine_for(*size, self.settings.batch)
        opts = PipelineOptions(
            batch=self.settings.batch,
            queue_frames=queue_frames,
            encode=encode,
            temporal=self.settings.temporal,
            overwrite=overwrite,
            strict=strict,
        )
        return derain_video(src, dst, engine, opts, progress,
                            engine_for=lambda h, w: self.engine_for(h, w, self.settings.batch))

    def image(self, src: str | Path, dst: str | Path, *, overwrite: bool = False) -> None:
        """De-rain the image file ``src`` into ``dst`` (format from ``dst``'s suffix); alpha
        is carried through untouched, a grey image stays grey."""
        src, dst = Path(src), Path(dst)
        _check_target(src, dst, overwrite)
        rgb, alpha, grey = read_picture(src)
        write_picture(dst, self(rgb), alpha, grey, overwrite=overwrite)

    def folder(
        self,
        src: str | Path,
        dst: str | Path,
        *,
        overwrite: bool = False,
        progress: Progress | None = None,
    ) -> int:
        """De-rain every image directly in folder ``src`` into folder ``dst`` (same names);
        returns the number of images. The images, in name order, are one video for the
        temporal stage (frames of a clip); alpha and grey are kept as in :meth:`image`.
        Existing outputs are an error unless ``overwrite``."""
        files = list_images(src)
        check_images(files)  # a broken image is an error before anything is written
        dst = Path(dst)
        clashes = [dst / f.name for f in files if (dst / f.name).exists()]
        if clashes and not overwrite:
            raise RTDerainError(f"output exists: {clashes[0]} (use --overwrite to replace it)")
        dst.mkdir(parents=True, exist_ok=True)
        # One stream in name order: batched, and a video to the temporal stage when it is on.
        kept: collections.deque = collections.deque()  # (alpha, grey) of frames in flight

        def rgbs() -> Iterator[np.ndarray]:
            for f in files:
                rgb, alpha, grey = read_picture(f)
                kept.append((alpha, grey))
                yield rgb

        outputs = self.frames(rgbs())
        for i, (f, out) in enumerate(zip(files, outputs, strict=True)):
            write_picture(dst / f.name, out, *kept.popleft(), overwrite=overwrite)
            if progress is not None:
                progress(i + 1, len(files))
        return len(files)

    def run(self, job: Job, *, overwrite: bool = False, progress: Progress | None = None,
            encode: EncodeOptions | None = None, queue_frames: int = 8,
            strict: bool = False) -> str:
        """Run one planned job (:func:`rtderain.jobs.plan_jobs`); returns its summary line.

        ``overwrite`` (or ``job.overwrite``) lets the output replace an existing file; without
        it nothing is ever replaced, not even a file created at the output during the run."""
        overwrite = overwrite or job.overwrite
        if job.kind == "video":
            enc = {f.name: getattr(encode, f.name) for f in fields(EncodeOptions)} if encode else {}
            summary = self.video(job.source, job.target, overwrite=overwrite, progress=progress,
                                 queue_frames=queue_frames, strict=strict, **enc)
            return summary.line()
        if job.kind == "image":
            self.image(job.source, job.target, overwrite=overwrite)
            return f"{job.target}: 1 image"
        n = self.folder(job.source, job.target, overwrite=overwrite, progress=progress)
        return f"{job.target}: {n} images"


def _check_frame(frame: Any, index: int) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", type(frame).__name__)
        raise RTDerainError(f"frame {index}: expected an (H, W, 3) RGB array, got {shape}")
    if frame.dtype not in (np.uint8, np.uint16):
        raise RTDerainError(f"frame {index}: expected uint8 or uint16, got {frame.dtype}")


def _check_target(src: Path, dst: Path, overwrite: bool) -> None:
    if not src.exists():
        raise RTDerainError(f"input not found: {src}")
    if dst.exists() and src.resolve() == dst.resolve():
        raise RTDerainError(f"output {dst} is the input itself; choose another name")
    if dst.exists() and not overwrite:
        raise RTDerainError(f"output exists: {dst} (pass overwrite=True to replace it)")


def _encode_options(options: dict[str, Any]) -> EncodeOptions:
    known = {f.name for f in fields(EncodeOptions)}
    bad = sorted(set(options) - known)
    if bad:
        raise RTDerainError(f"unknown encode option {bad[0]!r} (known: {', '.join(sorted(known))})")
    return EncodeOptions(**options)
