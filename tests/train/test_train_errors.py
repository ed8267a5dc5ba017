"""``rtderain train``: bad ``--set`` values are one line before any data is indexed or
memory allocated; SIGTERM / SIGINT stop within seconds with a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rtderain.errors import RTDerainError
from rtderain.train import trainer as trainer_module
from rtderain.train.config import load_train_config
from rtderain.train.trainer import Trainer
from tests.mediagen import run_cli

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, clips: Path, **sections) -> Path:
    raw = {
        "model": "mgid-rt",
        "data": {"roots": [str(clips)], "crop": 32, "batch": 2},
        "optim": {"lr": 1e-3, "steps": 3},
        "val": {"every_steps": 0, "every_min": 0},
        "run": {"name": "t", "out_dir": str(tmp_path / "runs"), "threads": 1, "log_every": 1},
    }
    for key, value in sections.items():
        raw[key].update(value)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("data.batch=0", "batch=0 is out of range"),
        ("data.batch=-1", "batch=-1 is out of range"),
        ("data.crop=0", "crop=0 is out of range"),
        ("data.frames_per_clip=0", "frames_per_clip=0 is out of range"),
        ("optim.lr=-1", "lr=-1.0 is out of range"),
        ("optim.lr=nan", "lr=nan is out of range"),
        ("run.device=banana", "device='banana' is not auto, cpu, cuda or cuda:N"),
        ("run.log_every=0", "log_every=0 is out of range"),
        ("run.threads=-3", "threads=-3 is out of range"),
        ("data.root_weights=[-2]", "root_weights[]=-2 is out of range"),
        ("loss.bsw=-1", "bsw=-1.0 is out of range"),
        ("model_overrides.colour=red", "model_overrides: unknown key 'colour'"),
        ("model_overrides.channels=100000", "channels=100000 is out of range"),
        ("model_overrides.levels=two", "model_overrides.levels: expected int"),
        ("run.out_dir=BLOCKED/runs", "run.out_dir: cannot create"),
        ("data.crop=4096", "data.crop=4096 is larger than every clip (the largest is 80x64)"),
    ],
)
def test_bad_set_values_are_refused_up_front(tiny_clips, tmp_path, monkeypatch, override,
                                             needle):
    (tmp_path / "BLOCKED").write_text("a file, not a folder")
    override = override.replace("BLOCKED", str(tmp_path / "BLOCKED"))
    if "crop=4096" not in override:  # the data must not even be indexed
        monkeypatch.setattr(trainer_module, "ClipDataset", lambda *a, **k: pytest.fail("indexed"))
    # a crop above every clip: refused before any clip is decoded (upscaling allocates)
    monkeypatch.setattr("rtderain.train.data.ClipDataset.clip_frames",
                        lambda *a: pytest.fail("decoded"))
    with pytest.raises(RTDerainError) as info:
        cfg, raw = load_train_config(_config(tmp_path, tiny_clips), (override,))
        Trainer(cfg, raw)
    message = str(info.value)
    assert needle in message and "\n" not in message, message
    assert not (tmp_path / "runs").exists()


def test_bad_set_value_on_the_command_line_is_one_line(tiny_clips, tmp_path):
    cfg = _config(tmp_path, tiny_clips)
    result = run_cli("train", "-c", str(cfg), "--set", "run.device=banana")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"rtderain: error: {cfg}.run: device='banana' is not auto, cpu, cuda or cuda:N"
    ]


# Run `rtderain train` with one slow part: data after the first step, or validation.
_SLOW = """
import sys, time
from rtderain.cli import main
from rtderain.train import data, trainer
def slow(*args, **kwargs):
    for _ in range(1200):  # 60 s in small sleeps, like a long decode or validation
        time.sleep(0.05)
    raise AssertionError("the slow part ran to its end")
if sys.argv[1] == "data":
    real, calls = data.ClipDataset.__getitem__, []
    def getitem(self, i):
        calls.append(i)
        return real(self, i) if len(calls) <= 2 else slow()
    data.ClipDataset.__getitem__ = getitem
else:
    trainer.evaluate_pairs = slow
sys.argv = ["rtderain", "train", "-c", sys.argv[2]]
main()
"""


@pytest.mark.parametrize("part", ["data", "validation"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_training_within_seconds_with_a_checkpoint(
    tiny_clips, tmp_path, part, signum
):
    val = {"synthetic": [str(tiny_clips)], "every_steps": 1} if part == "validation" else {}
    cfg = _config(tmp_path, tiny_clips, optim={"steps": 1000}, val=val)
    log = tmp_path / "runs" / "t" / "log.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW, part, str(cfg)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (log.is_file() and log.read_text().strip()):  # the first step is done
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(1.0)  # now inside the slow part
        sent = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=50)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert took < 10, f"took {took:.1f} s to stop"
    assert "stopped at step 1" in err and "Traceback" not in err, err[-2000:]
    from rtderain.models.checkpoint import read_checkpoint

    assert read_checkpoint(log.parent / "last.pt")["trainer"]["step"] == 1
    assert json.loads(log.read_text().splitlines()[0])["step"] == 1
