"""Engine cache: keys cover every input, reuse, corrupt -> rebuild, concurrent builds."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rtderain.backends.base import BuildSpec
from rtderain.backends.cache import ArtifactKey, EngineCache, engines_dir
from rtderain.models.checkpoint import weights_digest

from .conftest import perturbed_model

REPO = Path(__file__).resolve().parents[2]

SPEC = BuildSpec("mgid-rt", "0123456789abcdef", 1, 368, 640, "fp32", "cpu")
KEY = ArtifactKey(SPEC, "openvino", "AMD EPYC", {"openvino": "2026.1"}, {"num_threads": 0})


def _variants() -> dict[str, ArtifactKey]:
    """KEY with exactly one input changed, for every input."""
    out = {
        f"spec.{name}": dataclasses.replace(KEY, spec=dataclasses.replace(SPEC, **{name: value}))
        for name, value in [
            ("model", "mgid"),
            ("digest", "fedcba9876543210"),
            ("batch", 4),
            ("height", 720),
            ("width", 1280),
            ("precision", "bf16"),
            ("device", "cuda:0"),
            ("io", "u8"),
        ]
    }
    out["backend"] = dataclasses.replace(KEY, backend="onnxruntime")
    out["device_name"] = dataclasses.replace(KEY, device_name="Intel Xeon")
    out["versions"] = dataclasses.replace(KEY, versions={"openvino": "2026.2"})
    out["settings"] = dataclasses.replace(KEY, settings={"num_threads": 1})
    return out


def test_key_changes_when_any_input_changes():
    stems = {name: key.stem() for name, key in _variants().items()}
    assert KEY.stem() not in stems.values()
    assert len(set(stems.values())) == len(stems)
    assert dataclasses.replace(KEY).stem() == KEY.stem()  # equal inputs, equal key


def test_weights_digest_follows_the_weights():
    a, b = perturbed_model("mgid-rt", seed=0), perturbed_model("mgid-rt", seed=1)
    assert weights_digest(a) == weights_digest(perturbed_model("mgid-rt", seed=0))
    assert weights_digest(a) != weights_digest(b)


class Counter:
    """A build function that counts its calls and writes a known payload."""

    def __init__(self, payload: bytes = b"engine-bytes") -> None:
        self.calls = 0
        self.payload = payload

    def __call__(self, path: Path) -> None:
        self.calls += 1
        path.write_bytes(self.payload)


def test_reuse_when_nothing_changes(tmp_path):
    cache, build = EngineCache(tmp_path), Counter()
    first = cache.get_or_build(KEY, ".bin", build, lambda p: p.read_bytes())
    second = cache.get_or_build(KEY, ".bin", build, lambda p: p.read_bytes())
    assert first == second == b"engine-bytes"
    assert build.calls == 1
    artifact, sidecar = cache.paths(KEY, ".bin")
    meta = json.loads(sidecar.read_text())
    assert meta["key"]["backend"] == "openvino" and meta["key"]["width"] == 640
    assert meta["key"]["versions"] == {"openvino": "2026.1"}
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(
        [artifact.name, sidecar.name]
    )


def test_changed_key_builds_a_new_artifact(tmp_path):
    cache, build = EngineCache(tmp_path), Counter()
    cache.get_or_build(KEY, ".bin", build, lambda p: p.read_bytes())
    cache.get_or_build(_variants()["versions"], ".bin", build, lambda p: p.read_bytes())
    assert build.calls == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "sidecar", "key", "delete", "list",
                                    "null", "key-list"])
def test_corrupt_artifact_is_rebuilt_with_a_warning(tmp_path, caplog, damage):
    cache, build = EngineCache(tmp_path), Counter()
    cache.get_or_build(KEY, ".bin", build, lambda p: p.read_bytes())
    artifact, sidecar = cache.paths(KEY, ".bin")
    if damage == "truncate":
        artifact.write_bytes(b"engine")
    elif damage == "flip":
        artifact.write_bytes(b"Engine-bytes")
    elif damage == "sidecar":
        sidecar.write_text("{not json")
    elif damage == "key":
        meta = json.loads(sidecar.read_text())
        meta["key"]["versions"] = {"openvino": "1999.0"}
        sidecar.write_text(json.dumps(meta))
    elif damage in ("list", "null"):  # valid JSON, not a mapping
        sidecar.write_text('["rtderain-engine"]' if damage == "list" else "null")
    elif damage == "key-list":
        meta = json.loads(sidecar.read_text())
        meta["key"] = list(meta["key"])
        sidecar.write_text(json.dumps(meta))
    else:
        artifact.unlink()
    with caplog.at_level(logging.WARNING, logger="rtderain.backends.cache"):
        out = cache.get_or_build(KEY, ".bin", build, lambda p: p.read_bytes())
    assert out == b"engine-bytes"
    assert build.calls == 2
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    assert cache.problem(KEY, ".bin") is None


def test_artifact_the_runtime_rejects_is_rebuilt(tmp_path, caplog):
    cache, build = EngineCache(tmp_path), Counter()
    cache.get_or_build(KEY, ".bin", build, lambda p: p.read_bytes())
    loads = []

    def picky_load(path: Path) -> bytes:
        loads.append(path)
        if len(loads) == 1:
            raise RuntimeError("runtime says: bad blob")
        return path.read_bytes()

    with caplog.at_level(logging.WARNING, logger="rtderain.backends.cache"):
        assert cache.get_or_build(KEY, ".bin", build, picky_load) == b"engine-bytes"
    assert build.calls == 2
    assert any("failed to load" in r.getMessage() for r in caplog.records)


def test_failed_build_leaves_nothing(tmp_path):
    cache = EngineCache(tmp_path)

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("compiler crashed")

    with pytest.raises(RuntimeError, match="compiler crashed"):
        cache.get_or_build(KEY, ".bin", broken, lambda p: p.read_bytes())
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_engines_dir_option_env_default(tmp_path, monkeypatch):
    monkeypatch.delenv("RTDERAIN_ENGINES", raising=False)
    assert engines_dir() == REPO / "engines"
    monkeypatch.setenv("RTDERAIN_ENGINES", str(tmp_path / "env"))
    assert engines_dir() == tmp_path / "env"
    assert engines_dir(tmp_path / "opt") == tmp_path / "opt"


_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rtderain.backends.base import BuildSpec
    from rtderain.backends.cache import ArtifactKey, EngineCache

    root, tag = Path(sys.argv[1]), sys.argv[2]
    key = ArtifactKey(BuildSpec("mgid-rt", "d", 1, 16, 16, "fp32", "cpu"), "fake", "cpu")

    def build(path):
        with open(root / "builds.log", "a") as fh:
            fh.write(tag + "\\n")
        time.sleep(1.5)  # a slow build: the other process must wait, not build too
        path.write_bytes(b"built by " + tag.encode())

    # Barrier: both processes have imported everything before either starts.
    (root / f"ready-{tag}").touch()
    while len(list(root.glob("ready-*"))) < 2:
        time.sleep(0.01)
    print(EngineCache(root).get_or_build(key, ".bin", build, lambda p: p.read_bytes()).decode())
    """
)


def test_two_processes_build_one_valid_artifact(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(tmp_path), tag],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for tag in ("A", "B")
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    builds = (tmp_path / "builds.log").read_text().split()
    assert len(builds) == 1
    assert {out.strip() for out, _ in outs} == {f"built by {builds[0]}"}
    files = sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".bin", ".json", ".tmp"))
    assert len(files) == 2 and not any(".tmp" in name for name in files)
    key = ArtifactKey(BuildSpec("mgid-rt", "d", 1, 16, 16, "fp32", "cpu"), "fake", "cpu")
    assert EngineCache(tmp_path).problem(key, ".bin") is None


_READ_ONLY = textwrap.dedent(
    """
    import json, logging, sys
    from pathlib import Path
    from rtderain.backends.base import BuildSpec
    from rtderain.backends.cache import ArtifactKey, EngineCache

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("rtderain.backends.cache").addHandler(handler)
    logging.getLogger("rtderain.backends.cache").setLevel(logging.INFO)
    builds = []

    def build(path):
        builds.append(str(path))
        path.write_bytes(b"built in the child")

    key = ArtifactKey(BuildSpec("mgid-rt", "d", 1, 16, 16, "fp32", "cpu"), "fake", sys.argv[2])
    out = EngineCache(sys.argv[1]).get_or_build(key, ".bin", build, lambda p: p.read_bytes())
    print(json.dumps({"out": out.decode(), "builds": builds, "warnings": [
        r.getMessage() for r in records if r.levelno >= logging.WARNING]}))
    """
)


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions apply (root bypasses them)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a folder read-only")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("device", ["cpu", "another-cpu"])
def test_read_only_cache_loads_and_builds_in_a_temp_folder(tmp_path, device):
    root = tmp_path / "engines"
    key = ArtifactKey(BuildSpec("mgid-rt", "d", 1, 16, 16, "fp32", "cpu"), "fake", "cpu")
    EngineCache(root).get_or_build(key, ".bin", Counter(b"built before"), lambda p: p)
    before = sorted(p.name for p in root.iterdir())
    for path in [*root.iterdir(), root]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        res = subprocess.run(
            [*_unprivileged(), sys.executable, "-c", _READ_ONLY, str(root), device],
            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
            timeout=120,
        )
    finally:
        root.chmod(0o755)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    if device == "cpu":  # the valid engine is loaded, nothing built, no warning
        assert got == {"out": "built before", "builds": [], "warnings": []}
    else:  # a new key: built once outside the folder, one warning
        assert got["out"] == "built in the child" and len(got["builds"]) == 1
        assert not got["builds"][0].startswith(str(root))
        assert len(got["warnings"]) == 1 and "cannot write" in got["warnings"][0]
    assert sorted(p.name for p in root.iterdir()) == before


def test_load_that_cannot_run_here_is_not_rebuilt(tmp_path):
    """A runtime that loads the file but cannot run here (ORT dropping its CUDA provider)
    is not a bad file: no rebuild, the reason propagates so ``auto`` falls back."""
    from rtderain.backends.base import BackendUnavailable

    cache, build = EngineCache(tmp_path), Counter()
    cache.get_or_build(KEY, ".bin", build, lambda p: p.read_bytes())

    def load(path):
        raise BackendUnavailable("onnxruntime: CUDAExecutionProvider did not load")

    with pytest.raises(BackendUnavailable, match="did not load"):
        cache.get_or_build(KEY, ".bin", build, load)
    assert build.calls == 1


class _FakeGpuBackend:
    name, suffix, static, frames_io = "fake", ".bin", True, False

    def versions(self):
        return {"fake": "1.0"}

    def settings_dict(self):
        return {}


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch answers as a machine with one compute-capability 9.0 GPU on CUDA 12.8."""
    import torch

    capability = {"value": (9, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability["value"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    return capability


def test_cuda_and_cuda0_are_one_key_with_capability_and_cuda_runtime(tmp_path, fake_gpu):
    import torch

    from rtderain.backends.registry import CachedEngine, resolve_device

    model = perturbed_model("mgid-rt")

    def key(device):
        engine = CachedEngine(_FakeGpuBackend(), model, torch.device(device), "fp16", 1,
                              EngineCache(tmp_path))
        return engine.key(64, 64)

    assert str(resolve_device("cuda")) == "cuda:0"
    plain, zero, one = key("cuda"), key("cuda:0"), key("cuda:1")
    assert plain.stem() == zero.stem() and plain.spec.device == "cuda:0"
    assert one.stem() != zero.stem()
    assert zero.versions["compute_capability"] == "9.0"
    assert zero.versions["cuda_runtime"] == "12.8"
    fake_gpu["value"] = (8, 0)  # the same file on an A100: another key
    assert key("cuda:0").stem() != zero.stem()
    cpu = CachedEngine(_FakeGpuBackend(), model, torch.device("cpu"), "fp32", 1,
                       EngineCache(tmp_path)).key(64, 64)
    assert "compute_capability" not in cpu.versions  # CPU keys are unchanged
