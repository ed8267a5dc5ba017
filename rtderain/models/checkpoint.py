"""Self-describing checkpoints: model name, hyper-parameters, memory items, training metadata.

File layout (``torch.save`` of a dict)::

    {"format": "rtderain-checkpoint", "version": 1,
     "model": {config fields}, "state_dict": {... incl. memory.items},
     "meta": {step, losses, data, command, wall_time, ...},
     # training checkpoints only:
     "optimizer": ..., "scheduler": ..., "rng": ...}

Writes are atomic: a temporary file in the same folder, fsync, then ``os.replace``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from rtderain import util
from rtderain.config import from_dict
from rtderain.errors import ConfigError, RTDerainError
from rtderain.models import MODELS, build_model, shipped_weights
from rtderain.models.mgid import MGID, ModelConfig

log = logging.getLogger(__name__)

FORMAT = "rtderain-checkpoint"
VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    util.atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_checkpoint(
    model: MGID, path: str | Path, meta: dict[str, Any] | None = None, **extra: Any
) -> None:
    """Save ``model`` (config, weights, memory items) plus ``meta`` and training ``extra``."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta or {},
        **extra,
    }
    atomic_save(payload, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint file; any problem is one clear error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise RTDerainError(f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RTDerainError(f"{path}: not a readable rtderain checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RTDerainError(f"{path}: not an rtderain checkpoint (no '{FORMAT}' header)")
    if payload.get("version") != VERSION:
        raise RTDerainError(
            f"{path}: checkpoint version {payload.get('version')} is not supported "
            f"(this rtderain reads version {VERSION})"
        )
    for key in ("model", "state_dict"):
        if not isinstance(payload.get(key), dict):
            got = "missing" if key not in payload else f"a {type(payload[key]).__name__}"
            raise RTDerainError(f"{path}: damaged checkpoint: {key!r} is {got}, not a mapping")
    bad = next((k for k, v in payload["state_dict"].items() if not torch.is_tensor(v)), None)
    if bad is not None:
        raise RTDerainError(f"{path}: damaged checkpoint: state_dict entry {bad!r} is not a tensor")
    if not isinstance(payload.setdefault("meta", {}), dict):
        raise RTDerainError(f"{path}: damaged checkpoint: 'meta' is not a mapping")
    return payload


def load_model(
    name: str | None = None, weights: str | Path | None = None, *, require_weights: bool = False
) -> MGID:
    """Build a model by name and/or from a weights file, in eval mode on the CPU.

    * ``weights`` given: the file decides the architecture; if ``name`` is given too it must
      match the file's model name, else a clear error.
    * only ``name``: the shipped weights for that name; if none ship, an untrained
      (identity) network, unless ``require_weights``.
    """
    if weights is None:
        if name is None:
            raise RTDerainError("give a model name or a weights file")
        path = shipped_weights(name)
        if path is None:
            if require_weights:
                raise RTDerainError(f"no shipped weights for model {name!r}")
            model = build_model(name)
            model.weights_path = None
            return model.eval()
        weights = path
    payload = read_checkpoint(weights)
    try:
        cfg = from_dict(ModelConfig, payload["model"], where=f"{weights}: model")
    except ConfigError as exc:
        raise RTDerainError(str(exc)) from None
    _check_name(weights, cfg.name, name)
    if cfg.name in MODELS and MODELS[cfg.name] != cfg:
        diff = [
            f.name
            for f in dataclasses.fields(cfg)
            if getattr(cfg, f.name) != getattr(MODELS[cfg.name], f.name)
        ]
        # Allowed (a trained variant), but say so: the file's own config wins.
        log.info("%s: %s differs from the registered config in %s", weights, cfg.name, diff)
    model = MGID(cfg)
    try:
        result = model.load_state_dict(payload["state_dict"], strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        lines = str(exc).splitlines()  # "Error(s) in loading ...:", then one line a tensor
        reason = (lines[1] if len(lines) > 1 else lines[0] if lines else "").strip()
        raise RTDerainError(
            f"{weights}: state dict does not fit model {cfg.name!r} ({reason})"
        ) from None
    if result.missing_keys or result.unexpected_keys:
        bad = (result.missing_keys or result.unexpected_keys)[0]
        raise RTDerainError(
            f"{weights}: state dict does not match model {cfg.name!r} "
            f"({len(result.missing_keys)} missing, {len(result.unexpected_keys)} unexpected "
            f"keys, e.g. {bad!r})"
        )
    model.weights_path = Path(weights)
    return model.eval()


def _check_name(weights: str | Path, held: str, name: str | None) -> None:
    if name is not None and held != name:
        raise RTDerainError(
            f"{weights}: holds weights for model {held!r}, not {name!r} "
            "(drop --model or pass the matching weights)"
        )


def check_weights_model(name: str | None, weights: str | Path | None) -> None:
    """A model named explicitly (``--model``) and a weights file of another model: one
    clear error before any work (without ``--model`` the file decides, as in
    :func:`load_model`)."""
    if name is None or weights is None:
        return
    held = read_checkpoint(weights).get("model")
    _check_name(weights, held.get("name") if isinstance(held, dict) else None, name)


def weights_digest(model: MGID) -> str:
    """Short SHA-256 over the model's config and every tensor (for engine cache keys)."""
    h = hashlib.sha256(repr(dataclasses.asdict(model.config)).encode())
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
