"""Trainer: resume equals an uninterrupted run; 2-process DDP keeps the memory identical."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rtderain.config import apply_overrides, from_dict
from rtderain.errors import ConfigError, RTDerainError
from rtderain.models.checkpoint import read_checkpoint
from rtderain.train.config import TrainConfig
from rtderain.train.trainer import Trainer, lr_at

REPO = Path(__file__).resolve().parents[2]


def _raw(clips: Path, out: Path, steps: int = 4) -> dict:
    return {
        "model": "mgid-rt",
        "data": {"roots": [str(clips)], "crop": 32, "batch": 2, "pseudo_gt": "median"},
        "loss": {"pseudo": 1.0},
        "optim": {"lr": 1e-3, "steps": steps, "warmup": 1},
        "val": {"synthetic": [str(clips)], "frames": 1, "every_steps": 0, "every_min": 0},
        "run": {"name": "t", "out_dir": str(out), "threads": 1, "log_every": 1},
    }


def _trainer(raw: dict, resume: bool = False) -> Trainer:
    return Trainer(from_dict(TrainConfig, raw), raw, resume=resume)


def _trained(raw: dict, steps: int) -> Trainer:
    """A trainer after ``steps`` steps, its state saved to ``last.pt``."""
    trainer = _trainer(raw)
    trainer.out.mkdir(parents=True)
    for _ in range(steps):
        trainer.train_step()
    trainer.save_last({})
    return trainer


def test_set_overrides_take_numbers_yaml_reads_as_strings() -> None:
    """``--set optim.lr=1e-4``: YAML 1.1 reads ``1e-4`` (no dot) as a string; a float field
    still gets the number, and a word is a clear config error, not a crash in Adam."""
    raw = apply_overrides({}, ["optim.lr=1e-4", "optim.min_lr=0"])
    cfg = from_dict(TrainConfig, raw)
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.optim.min_lr == 0.0
    with pytest.raises(ConfigError, match=r"optim.*lr.*expected a number"):
        from_dict(TrainConfig, apply_overrides({}, ["optim.lr=fast"]))


def test_lr_schedule_warms_up_then_anneals() -> None:
    cfg = from_dict(TrainConfig, {"optim": {"lr": 1.0, "min_lr": 0.0, "steps": 10, "warmup": 2}})
    assert lr_at(cfg, 0, 0) == pytest.approx(0.5)
    assert lr_at(cfg, 5, 0) == pytest.approx(0.5)
    assert lr_at(cfg, 10, 0) == pytest.approx(0.0)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(
    tiny_clips: Path, tmp_path: Path
) -> None:
    straight = _trainer(_raw(tiny_clips, tmp_path / "a"))
    straight.out.mkdir(parents=True)
    for _ in range(4):
        straight.train_step()

    first = _trained(_raw(tiny_clips, tmp_path / "b"), 2)
    second = _trainer(_raw(tiny_clips, tmp_path / "b"), resume=True)
    assert second.step == 2
    for _ in range(2):
        second.train_step()

    a, b = straight.model.state_dict(), second.model.state_dict()
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["memory.items"], first.model.memory.items)  # memory moved


def test_ema_averages_the_weights_and_is_what_final_pt_holds(
    tiny_clips: Path, tmp_path: Path
) -> None:
    """``optim.ema``: after one step the average is ``lerp(start, live, 1 - 1/10)`` (the
    ramped decay at step 0), the memory items are the live ones, and ``final.pt`` holds
    the average, not the live weights."""
    raw = _raw(tiny_clips, tmp_path, steps=1)
    raw["optim"]["ema"] = 0.999
    trainer = _trainer(raw)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    out = trainer.run()
    live, avg = trainer.model.state_dict(), trainer.ema.state_dict()
    weight = next(name for name, _ in trainer.model.named_parameters())
    assert not torch.equal(live[weight], start[weight])
    torch.testing.assert_close(avg[weight], torch.lerp(start[weight], live[weight], 0.9))
    assert torch.equal(avg["memory.items"], live["memory.items"])
    final = read_checkpoint(out / "final.pt")
    assert torch.equal(final["state_dict"][weight], avg[weight])
    assert final["meta"]["ema"] == 0.999


def test_resume_keeps_the_weight_average(tiny_clips: Path, tmp_path: Path) -> None:
    def raw(out: Path) -> dict:
        r = _raw(tiny_clips, out)
        r["optim"]["ema"] = 0.9
        return r

    straight = _trained(raw(tmp_path / "a"), 4)
    _trained(raw(tmp_path / "b"), 2)
    second = _trainer(raw(tmp_path / "b"), resume=True)
    for _ in range(2):
        second.train_step()
    a, b = straight.ema.state_dict(), second.ema.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    plain = _raw(tiny_clips, tmp_path / "c")
    _trained(plain, 1)
    with pytest.raises(RTDerainError, match="no weight average"):
        _trainer(raw(tmp_path / "c"), resume=True)


def test_init_loads_weights_and_memory_but_restarts_the_schedule(
    tiny_clips: Path, tmp_path: Path
) -> None:
    first = _trained(_raw(tiny_clips, tmp_path / "a"), 2)
    raw = _raw(tiny_clips, tmp_path / "b")
    raw["run"]["init"] = str(first.out / "last.pt")
    second = _trainer(raw)
    assert second.step == 0 and second.train_seconds == 0.0
    a, b = first.model.state_dict(), second.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not any(second.opt.state.values())  # fresh Adam moments


def test_init_from_another_network_is_a_clear_error(tiny_clips: Path, tmp_path: Path) -> None:
    first = _trained(_raw(tiny_clips, tmp_path / "a"), 0)
    raw = _raw(tiny_clips, tmp_path / "b")
    raw["model"], raw["run"]["init"] = "mgid", str(first.out / "last.pt")
    with pytest.raises(RTDerainError, match="run.init="):
        _trainer(raw)


def test_run_writes_checkpoints_log_and_config(tiny_clips: Path, tmp_path: Path) -> None:
    out = _trainer(_raw(tiny_clips, tmp_path, steps=3)).run()
    for name in ("last.pt", "best.pt", "final.pt", "log.jsonl", "config.yaml"):
        assert (out / name).is_file(), name
    meta = read_checkpoint(out / "final.pt")["meta"]
    assert meta["step"] == 3 and "lb" in meta["losses"]


def test_pause_file_holds_training_without_counting_it(
    tiny_clips: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import threading
    import time

    trainer = _trainer(_raw(tiny_clips, tmp_path, steps=2))
    trainer.out.mkdir(parents=True)
    (trainer.out / "PAUSE").touch()
    threading.Timer(2.0, (trainer.out / "PAUSE").unlink).start()
    start = time.monotonic()
    with caplog.at_level(logging.INFO, logger="rtderain.train.trainer"):
        trainer.run()
    assert time.monotonic() - start >= 2.0  # it waited for the file to go
    assert any("paused" in r.message for r in caplog.records)
    assert trainer.step == 2
    assert trainer.train_seconds < 1.5  # the 2 s wait is not training time


@pytest.mark.slow
def test_ddp_two_processes_keep_memory_identical(tiny_clips: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(yaml.safe_dump(_raw(tiny_clips, tmp_path, steps=3)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", "-m", "rtderain", "train", "-c", str(cfg)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = read_checkpoint(tmp_path / "t" / "final.pt")["meta"]
    assert meta["world_size"] == 2 and meta["step"] == 3
    assert meta["memory_rank_spread"] == 0.0
