"""The training loop: Siamese pairs, the four losses, memory update, checkpoints, validation.

Outputs in ``<run.out_dir>/<run.name>/``: ``config.yaml`` (the effective config),
``log.jsonl`` (losses and validation, one JSON object a line), ``train.log``, ``last.pt``
(full training state, written atomically every ``ckpt_every_min``; ``--resume`` continues
from it), ``best.pt`` (model-only, best validation score) and ``final.pt``; with
``optim.ema`` those two hold the weight average. While a file ``PAUSE`` exists in that
folder the run holds between steps (not counted as training time). SIGTERM or SIGINT stops
within seconds with ``last.pt`` written: reading data and validating are cut short.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from rtderain import util
from rtderain.config import from_dict
from rtderain.errors import RTDerainError
from rtderain.models import build_model, get_config
from rtderain.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from rtderain.models.mgid import MGID, ModelConfig
from rtderain.train import distributed as D
from rtderain.train import teacher as T
from rtderain.train.config import TrainConfig, lr_at
from rtderain.train.data import ClipDataset
from rtderain.train.losses import siamese_losses
from rtderain.train.validate import evaluate_pairs, paired_frames

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """A stop signal cut short work that changes no training state (see ``_abandonable``)."""


class TrainGraph(nn.Module):
    """``forward`` = :meth:`MGID.forward_train`, so DDP's hooks see the training graph."""

    def __init__(self, net: MGID) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net.forward_train(x)


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RTDerainError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


class Trainer:
    """One training run. ``run()`` trains until the step/time budget or a stop signal."""

    def __init__(self, cfg: TrainConfig, raw: dict[str, Any], resume: bool = False,
                 command: str = "") -> None:
        self.cfg, self.raw, self.command = cfg, raw, command
        self.out = Path(cfg.run.out_dir) / cfg.run.name
        util.check_creatable(self.out, "run.out_dir")  # before data or memory
        mcfg = from_dict(ModelConfig, {**dataclasses.asdict(get_config(cfg.model)),
                                       **cfg.model_overrides}, where="model_overrides")
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        self.device = _device(cfg.run.device)
        if self.device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        self.distributed = D.init_from_env(str(self.device))
        self.rank, self.world = D.world()
        if cfg.data.crop % mcfg.multiple:
            raise RTDerainError(
                f"data.crop={cfg.data.crop} is not a multiple of {mcfg.multiple} ({cfg.model})"
            )
        torch.manual_seed(cfg.run.seed)  # identical initial weights on every rank
        self.model = build_model(mcfg).to(self.device).train()
        if cfg.run.init:
            self._init_from(cfg.run.init)
        # The weight average (optim.ema): validated and saved instead of the live weights.
        self.ema: MGID | None = None
        if cfg.optim.ema:
            self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        # The frozen teacher (loss.teacher): read up front, so a bad file fails before data.
        self.teacher: MGID | None = None if cfg.loss.teacher <= 0 else (
            load_model(weights=cfg.run.teacher).to(self.device).requires_grad_(False))
        self.graph: nn.Module = TrainGraph(self.model)
        if self.distributed:
            self.graph = nn.parallel.DistributedDataParallel(
                self.graph, broadcast_buffers=False,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        o = cfg.optim
        self.opt = torch.optim.Adam(self.model.parameters(), lr=o.lr, betas=o.betas,
                                    weight_decay=o.weight_decay)
        d = cfg.data
        self.load_crop = T.loader_crop(d.crop, d.teacher_rotate_deg, mcfg.multiple)
        self.data = ClipDataset(list(d.roots), crop=self.load_crop, frames=2,
                                max_frames_per_clip=d.frames_per_clip, cache=d.cache,
                                pseudo_gt=d.pseudo_gt, quantile=d.quantile,
                                adaptive_levels=d.adaptive_levels,
                                root_weights=d.root_weights, flip=d.augment_flip,
                                rotate_deg=d.augment_rotate_deg,
                                cache_frames_max_gb=d.cache_frames_max_gb)
        self.step, self.train_seconds, self.best = 0, 0.0, -math.inf
        torch.manual_seed(cfg.run.seed * 1000 + 1 + self.rank)  # per-rank data stream
        if resume:
            self._resume()
        self._stop = self._abandon_now = False
        self._val_step = -1
        self._losses: dict[str, float] = {}  # the last logged means

    # -- state -------------------------------------------------------------------------------
    def _init_from(self, path: str) -> None:
        ck = read_checkpoint(path)
        if ck["model"] != dataclasses.asdict(self.model.config):
            raise RTDerainError(
                f"run.init={path}: its network ({ck['model'].get('name', '?')}) is not "
                f"the one this run trains ({self.cfg.model}, with model_overrides)"
            )
        self.model.load_state_dict(ck["state_dict"])
        log.info("initialised from %s (trained %s steps before)", path,
                 ck["meta"].get("step", "?"))

    def _resume(self) -> None:
        path = self.out / "last.pt"
        if not path.is_file():
            log.warning("--resume: %s not found, starting from scratch", path)
            return
        ck = read_checkpoint(path)
        self.model.load_state_dict(ck["state_dict"])
        self.opt.load_state_dict(ck["optimizer"])
        if self.ema is not None:
            if "ema" not in ck:
                raise RTDerainError(f"--resume: {path} has no weight average (optim.ema "
                                    "was off in that run); start a new run.name")
            self.ema.load_state_dict(ck["ema"])
        tr = ck["trainer"]
        self.step, self.train_seconds, self.best = tr["step"], tr["train_seconds"], tr["best"]
        if ck["meta"].get("config", {}).get("val") != self.raw.get("val"):
            log.info("validation settings changed since the checkpoint: best score reset")
            self.best = -math.inf
        rng = ck["rng"]
        torch.set_rng_state(rng[min(self.rank, len(rng) - 1)])
        log.info("resumed %s at step %d (%.1f min trained)", path, self.step,
                 self.train_seconds / 60)

    def _rng_states(self) -> list[torch.Tensor]:
        state = torch.get_rng_state()
        if not self.distributed:
            return [state]
        states = [torch.empty_like(state) for _ in range(self.world)]
        D.dist.all_gather_object(states, state)
        return states

    def _meta(self, losses: dict[str, float]) -> dict[str, Any]:
        return {
            "step": self.step,
            "train_minutes": round(self.train_seconds / 60, 2),
            "losses": losses,
            "data": list(self.cfg.data.roots),
            "loss_weights": dataclasses.asdict(self.cfg.loss),
            "pseudo_gt": self.cfg.data.pseudo_gt,
            "ema": self.cfg.optim.ema,
            "command": self.command,
            "world_size": self.world,
            "config": self.raw,
        }

    def save_last(self, losses: dict[str, float]) -> None:
        """Atomically write the full training state to ``last.pt`` (rank 0 writes)."""
        rng = self._rng_states()
        if self.rank != 0:
            return
        extra = {} if self.ema is None else {
            "ema": {k: v.detach().cpu() for k, v in self.ema.state_dict().items()}}
        save_checkpoint(
            self.model, self.out / "last.pt", self._meta(losses),
            optimizer=self.opt.state_dict(), rng=rng,
            trainer={"step": self.step, "train_seconds": self.train_seconds, "best": self.best},
            **extra,
        )

    @property
    def kept(self) -> MGID:
        """The network that is validated and saved: the weight average, if kept, else the
        live model."""
        return self.model if self.ema is None else self.ema

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        decay = min(self.cfg.optim.ema, (1 + self.step) / (10 + self.step))
        avg = list(self.ema.parameters())
        live = [p.detach() for p in self.model.parameters()]
        torch._foreach_lerp_(avg, live, 1.0 - decay)
        for a, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            a.copy_(b)

    # -- validation --------------------------------------------------------------------------
    def validate(self) -> dict[str, Any]:
        """Y-PSNR on the configured sets and the selection score (see ValConfig)."""
        v = self.cfg.val
        sets: dict[str, Any] = {f"syn{i}": p for i, p in enumerate(v.synthetic)}
        for key in ("nturain", "rain100h"):
            path = getattr(v, key)
            if path and Path(path).is_dir():
                sets[key] = path
        res: dict[str, Any] = {}
        for key, path in sets.items():
            r = evaluate_pairs(self.kept, paired_frames(path), v.frames, v.max_side,
                               str(self.device))
            res[key] = {"input": round(r["input"], 3), "output": round(r["output"], 3)}
        margins = [res[k]["output"] - t for k, t in v.targets.items() if k in res]
        gains = [r["output"] - r["input"] for r in res.values()]
        if margins:
            res["score"] = round(min(margins), 4)
        else:
            res["score"] = round(sum(gains) / len(gains), 4) if gains else 0.0
        return res

    def _log(self, record: dict[str, Any]) -> None:
        if self.rank == 0:
            with open(self.out / "log.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    # -- loop --------------------------------------------------------------------------------
    def _batch(self) -> dict[str, torch.Tensor]:
        idx = torch.randint(len(self.data), (self.cfg.data.batch,)).tolist()
        items = [self.data[i] for i in idx]
        return {k: torch.stack([it[k] for it in items]).to(self.device) for k in items[0]}

    def train_step(self) -> dict[str, float]:
        """One optimiser step on one batch of pairs, then the memory update."""
        cfg = self.cfg
        for g in self.opt.param_groups:
            g["lr"] = lr_at(cfg, self.step, self.train_seconds)
        with self._abandonable():
            batch = self._batch()
        f, n = batch["frames"], len(batch["frames"])
        autocast = functools.partial(torch.autocast, self.device.type, dtype=torch.bfloat16,
                                     enabled=cfg.run.bf16)
        pair, t, pseudo = T.teach(self.teacher, torch.cat([f[:, 0], f[:, 1]]), batch.get("pseudo"),
                                  cfg.data.teacher_rotate_deg, cfg.data.crop, autocast)
        with autocast():
            out = self.graph(pair)
        out_w, out_v = ({k: v[p] for k, v in out.items()} for p in (slice(n), slice(n, None)))
        terms = siamese_losses(pair[:n], pair[n:], out_w, out_v, cfg.loss, pseudo,
                               None if t is None else (t[:n], t[n:]))
        self.opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        if cfg.optim.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.opt.step()
        D.update_memory(self.model.memory, out["query"])
        self._update_ema()
        self.step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    def _request_stop(self, signum: int, _frame: Any) -> None:
        log.warning("signal %d: stopping", signum)
        self._stop = True
        if self._abandon_now:  # reading data or validating: drop it, keep the last step
            raise _Stopped

    @contextlib.contextmanager
    def _abandonable(self) -> Iterator[None]:
        """Work a stop signal may cut short (reading and caching clips, validation): it
        changes no training state. Not under DDP (the ranks stop between steps together)."""
        if self._stop:
            raise _Stopped
        self._abandon_now = not self.distributed
        try:
            yield
        finally:
            self._abandon_now = False

    def run(self) -> Path:
        """Train; returns the folder holding the checkpoints."""
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(
                yaml.safe_dump({**self.raw, "_command": self.command}, sort_keys=False),
                encoding="utf-8")
            fh = logging.FileHandler(self.out / "train.log")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logging.getLogger("rtderain").addHandler(fh)
        previous = {sig: signal.signal(sig, self._request_stop)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._train()
        except _Stopped:
            self.save_last(self._losses)
            log.warning("stopped at step %d; resume with --resume", self.step)
            return self.out
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _train(self) -> Path:
        cfg = self.cfg
        log.info("training %s (%s) on %s, world %d, from step %d", cfg.model, self.out,
                 self.device, self.world, self.step)
        acc: dict[str, float] = {}
        n_acc = 0
        last_ckpt = last_val = time.monotonic()
        budget = 60.0 * cfg.optim.time_budget_min if cfg.optim.time_budget_min else math.inf
        losses = self._losses
        while self.step < cfg.optim.steps and self.train_seconds < budget:
            self._wait_while_paused()
            t0 = time.monotonic()
            terms = self.train_step()
            self.train_seconds += time.monotonic() - t0
            for k, v in terms.items():
                acc[k] = acc.get(k, 0.0) + v
            n_acc += 1
            if self.step % cfg.run.log_every == 0 or self.step == cfg.optim.steps:
                losses = self._losses = {k: round(v / n_acc, 6) for k, v in acc.items()}
                self._log({"step": self.step, "lr": self.opt.param_groups[0]["lr"],
                           "train_min": round(self.train_seconds / 60, 2), **losses})
                log.info("step %d %s", self.step, losses)
                acc, n_acc = {}, 0
            now = time.monotonic()
            v = cfg.val
            if (v.every_steps and self.step % v.every_steps == 0) or (
                v.every_min and now - last_val >= 60 * v.every_min
            ):
                self._validate_and_keep(losses)
                last_val = time.monotonic()
            if self._stop_everywhere():
                raise _Stopped
            if time.monotonic() - last_ckpt >= 60 * cfg.run.ckpt_every_min:
                self.save_last(losses)
                last_ckpt = time.monotonic()
        self._validate_and_keep(losses)
        self.save_last(losses)
        spread = D.rank_spread(self.model.memory.items)
        if self.rank == 0:
            meta = {**self._meta(losses), "memory_rank_spread": spread}
            save_checkpoint(self.kept, self.out / "final.pt", meta)
            if not (self.out / "best.pt").is_file():
                save_checkpoint(self.kept, self.out / "best.pt", meta)
        return self.out

    def _wait_while_paused(self) -> None:
        """Hold between steps while ``<out>/PAUSE`` exists (frees the CPU, e.g. for a
        benchmark); the pause is not training time and the run resumes by itself."""
        pause = self.out / "PAUSE"
        if not pause.exists():
            return
        log.info("paused: %s exists (remove it to continue)", pause)
        while pause.exists() and not self._stop:
            time.sleep(0.5)
        log.info("pause over")

    def _stop_everywhere(self) -> bool:
        if not self.distributed:
            return self._stop
        flag = torch.tensor([1.0 if self._stop else 0.0])
        D.dist.all_reduce(flag, op=D.dist.ReduceOp.MAX)
        return bool(flag.item())

    def _validate_and_keep(self, losses: dict[str, float]) -> None:
        v = self.cfg.val
        if not (v.synthetic or v.nturain or v.rain100h) or self._val_step == self.step:
            return
        self._val_step = self.step
        if self.rank == 0:
            with self._abandonable():
                res = self.validate()
            self._log({"step": self.step, "val": res})
            log.info("validation at step %d: %s", self.step, res)
            if res["score"] > self.best:
                self.best = res["score"]
                save_checkpoint(self.kept, self.out / "best.pt",
                                {**self._meta(losses), "val": res})
        if self.distributed:
            best = torch.tensor([self.best])
            D.dist.broadcast(best, 0)
            self.best = float(best.item())


def train(cfg: TrainConfig, raw: dict[str, Any], resume: bool = False) -> Path:
    """Run one experiment (see :class:`Trainer`); returns its output folder."""
    command = " ".join(["rtderain", *sys.argv[1:]]) if sys.argv else ""
    trainer = Trainer(cfg, raw, resume=resume, command=command)
    try:
        return trainer.run()
    finally:
        D.shutdown()
