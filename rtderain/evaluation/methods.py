"""One registry of de-raining methods for evaluation and benchmarks: networks and baselines.

Every method has the same interface: ``method(frames)`` takes the uint8 ``(H, W, 3)`` RGB
frames of ONE clip, in order, and yields one de-rained uint8 ``(H, W, 3)`` RGB frame per
input, in order. Video baselines look at temporal neighbours (bounded windows); the networks
go frame by frame (each frame reflect-padded to the engine's multiple and cropped back).

``METHODS`` is the one explicit table of names; :func:`create_method` builds one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rtderain.errors import RTDerainError


class Method(Protocol):
    """A ready de-raining method (see module doc for the frame contract)."""

    name: str
    temporal: bool  # True: uses neighbouring frames, so a clip's frames must be one video

    def params(self) -> dict[str, Any]:
        """The parameters in effect (for reports)."""
        ...

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]: ...


class NetworkMethod:
    """A registered network (``mgid``, ``mgid-rt``, ``mgid-lite``) run by an inference engine,
    frame by frame.

    Args:
        model: registered model name.
        weights: checkpoint path; None = the shipped weights, or an untrained (identity)
            network if none ship (``params()["weights"]`` then says ``"untrained"``).
        engine, device, precision: passed to :func:`rtderain.backends.create_engine`.
        temporal: ``off`` (frame by frame), ``window`` or ``causal``: the temporal stage
            after the network (:mod:`rtderain.temporal`); the method is then named
            ``<model>+<mode>`` in reports.
        orient: ``auto``, ``off`` or a streak angle (:mod:`rtderain.media.orient`).
    """

    def __init__(
        self,
        model: str,
        weights: str | Path | None = None,
        engine: str = "auto",
        device: str = "auto",
        precision: str = "auto",
        temporal: str = "off",
        orient: str | float = "auto",
    ) -> None:
        from rtderain.backends import create_engine
        from rtderain.media.orient import oriented, parse_orient
        from rtderain.models.checkpoint import load_model
        from rtderain.temporal import TemporalSettings

        self.settings = TemporalSettings(temporal)
        self.temporal = temporal != "off"  # uses neighbouring frames
        self.name = model if temporal == "off" else f"{model}+{temporal}"
        net = load_model(model, weights)
        path = net.weights_path
        self.weights = str(path) if path is not None else "untrained"
        self.orient = parse_orient(orient)
        plain = create_engine(net, engine=engine, device=device, precision=precision)
        self.engine = oriented(plain, None, self.orient)  # plain takes any size

    def params(self) -> dict[str, Any]:
        out = {"weights": self.weights, "engine": self.engine.description,
               "orient": self.orient}
        if self.temporal:
            out["temporal"] = dataclasses.asdict(self.settings.resolved())
        return out

    def warmup(self, frame: np.ndarray) -> None:
        """Run one frame untimed (engine build/compile for this size happens here)."""
        for _ in self([frame]):
            pass

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        from rtderain.evaluation.baselines.window import check_frame
        from rtderain.media.batching import derain_frames
        from rtderain.temporal import TemporalStage

        stage = TemporalStage(settings=self.settings) if self.temporal else None
        for i, frame in enumerate(frames):
            check_frame(frame, i, None)
            out = derain_frames(self.engine, frame[None])[0]
            if stage is None:
                yield out
            else:
                for fused, _ in stage.push(frame, out):
                    yield fused
        if stage is not None:
            for fused, _ in stage.flush():
                yield fused


def _identity(**kw: Any) -> Method:
    from rtderain.evaluation.baselines.simple import Identity

    return Identity(**kw)


def _median(**kw: Any) -> Method:
    from rtderain.evaluation.baselines.simple import TemporalMedian

    return TemporalMedian(**kw)


def _garg(**kw: Any) -> Method:
    from rtderain.evaluation.baselines.garg_nayar import GargNayar

    return GargNayar(**kw)


def _zhang(**kw: Any) -> Method:
    from rtderain.evaluation.baselines.zhang import ZhangChromatic

    return ZhangChromatic(**kw)


def _fastderain(**kw: Any) -> Method:
    from rtderain.evaluation.baselines.fastderain import FastDeRain

    return FastDeRain(**kw)


def _network(model: str) -> Callable[..., Method]:
    def factory(**kw: Any) -> Method:
        return NetworkMethod(model, **kw)

    return factory


@dataclass(frozen=True)
class MethodInfo:
    """A registry entry: ``kind`` is ``network``, ``video`` (temporal baseline) or ``reference``."""

    name: str
    kind: str
    summary: str
    factory: Callable[..., Method]


METHODS: dict[str, MethodInfo] = {
    info.name: info
    for info in (
        MethodInfo(
            "mgid", "network", "memory-guided de-raining network (paper model)", _network("mgid")
        ),
        MethodInfo("mgid-rt", "network", "real-time variant of mgid", _network("mgid-rt")),
        MethodInfo("mgid-lite", "network", "luma variant of mgid (real time at 1080p)",
                   _network("mgid-lite")),
        MethodInfo("identity", "reference", "the rainy input, unchanged", _identity),
        MethodInfo("temporal-median", "video", "per-pixel median of 5 frames", _median),
        MethodInfo("garg-nayar", "video", "Garg & Nayar 2004 photometric detection", _garg),
        MethodInfo("zhang2006", "video", "Zhang et al. 2006 K-means + chromatic", _zhang),
        MethodInfo(
            "fastderain", "video", "FastDeRain-style directional-gradient ADMM", _fastderain
        ),
    )
}


def method_names() -> list[str]:
    return list(METHODS)


def create_method(name: str, **options: Any) -> Method:
    """Build method ``name``; ``options`` go to its constructor (e.g. ``weights=`` for networks,
    ``size=`` for ``temporal-median``). Unknown names or options are a clear error."""
    try:
        info = METHODS[name]
    except KeyError:
        raise RTDerainError(f"unknown method {name!r} (known: {', '.join(METHODS)})") from None
    try:
        return info.factory(**options)
    except TypeError as exc:
        if "argument" not in str(exc):
            raise
        raise RTDerainError(f"method {name!r}: {exc}") from None
