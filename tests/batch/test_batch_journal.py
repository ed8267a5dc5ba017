"""The journal: what counts as complete, and a fingerprint that reads only the file's ends."""

from __future__ import annotations

import os

from rtderain.batch.journal import Journal, fingerprint, settings_digest
from rtderain.jobs import RunSettings


def test_fingerprint_sees_size_ends_and_mtime(tmp_path):
    path = tmp_path / "big.mp4"
    data = bytearray(os.urandom(3 << 20))
    path.write_bytes(data)
    first = fingerprint(path)
    data[-1] ^= 1
    path.write_bytes(data)
    assert fingerprint(path)["hash"] != first["hash"]
    os.utime(path, ns=(first["mtime_ns"], first["mtime_ns"] + 10**9))
    assert fingerprint(path)["mtime_ns"] != first["mtime_ns"]


def test_complete_needs_done_same_input_settings_and_output_size(tmp_path):
    src, out = tmp_path / "a.mp4", tmp_path / "out.mp4"
    src.write_bytes(b"input")
    out.write_bytes(b"output")
    fp = fingerprint(src)
    digest = settings_digest(RunSettings(), {"crf": 18})
    journal = Journal(tmp_path / "j.jsonl")
    journal.record({"key": "a.mp4", "status": "started"})
    assert journal.owns("a.mp4") and not journal.complete("a.mp4", out, fp, digest)
    journal.record({"key": "a.mp4", "status": "done", "input_fingerprint": fp,
                    "settings": digest, "output_size": 6})
    again = Journal(tmp_path / "j.jsonl")
    assert again.complete("a.mp4", out, fp, digest)
    assert not again.complete("a.mp4", out, fp, settings_digest(RunSettings(), {"crf": 20}))
    assert not again.complete("a.mp4", out, {**fp, "size": 6}, digest)
    out.write_bytes(b"truncated?")
    assert not again.complete("a.mp4", out, fp, digest)
    assert settings_digest(RunSettings(batch=1, device="cpu"), {}) == settings_digest(
        RunSettings(batch=8, device="cuda"), {})
    assert settings_digest(RunSettings(model="mgid-rt"), {}) != settings_digest(RunSettings(), {})
