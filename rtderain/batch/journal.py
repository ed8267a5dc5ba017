"""The batch journal: which outputs are complete, for which input and settings.

A JSONL file beside the outputs (``rtderain-batch.journal.jsonl``): one record when a file
is submitted and one when its output is finished, appended (and fsynced) by the driver; the
last record of an output wins. At the start of a batch it is compacted (rewritten
atomically with one record per output), so a torn last line from a driver that died
mid-write is dropped, with a warning, and the file never grows without bound.

An output is complete when its record matches the input's fingerprint (size, mtime and a
fast content hash: SHA-256 of the size and the first and last MiB), the settings digest,
and the output file's size. Anything else is redone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from rtderain.util import atomic_write_text

log = logging.getLogger(__name__)

JOURNAL_NAME = "rtderain-batch.journal.jsonl"
REPORT_NAME = "rtderain-batch.report.json"
_MIB = 1 << 20
# RunSettings fields that change speed, not the output: a rerun with another batch size
# or device does not redo finished files.
_NOT_IN_DIGEST = {"batch", "queue_frames", "device"}


def fingerprint(path: str | Path) -> dict[str, Any]:
    """``{"size", "mtime_ns", "hash"}`` of a file; the hash reads at most 2 MiB."""
    path = Path(path)
    st = path.stat()
    h = hashlib.sha256(str(st.st_size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(_MIB))
        if st.st_size > _MIB:
            fh.seek(max(_MIB, st.st_size - _MIB))
            h.update(fh.read(_MIB))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "hash": h.hexdigest()[:32]}


def settings_digest(settings: Any, encode: dict[str, Any]) -> str:
    """A short digest of everything that decides an output's content: the run settings
    (model, weights file and its fingerprint, engine, precision, temporal stage) and the
    file's encoder options."""
    data = {k: v for k, v in dataclasses.asdict(settings).items() if k not in _NOT_IN_DIGEST}
    data["encode"] = encode
    if settings.weights:
        data["weights_file"] = fingerprint(settings.weights)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Journal:
    """The journal of one output folder (only the batch driver writes it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                self.records[rec["key"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                log.warning("%s line %d: unreadable record dropped (the file it names, if "
                            "any, is redone)", self.path, number)

    def compact(self) -> None:
        """Rewrite the journal atomically with one record per output."""
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records.values())
        atomic_write_text(self.path, text)

    def owns(self, key: str) -> bool:
        """Whether an output was written by a batch in this folder (it may be redone)."""
        return key in self.records

    def complete(self, key: str, target: Path, source: dict[str, Any], digest: str) -> bool:
        """Whether ``target`` is a finished output of this input and settings."""
        rec = self.records.get(key)
        if (rec is None or rec.get("status") != "done" or rec.get("settings") != digest
                or rec.get("input_fingerprint") != source):
            return False
        try:
            return target.stat().st_size == rec.get("output_size")
        except OSError:
            return False

    def record(self, *records: dict[str, Any]) -> None:
        """Append records (flushed and fsynced before returning): ``status`` ``started``
        before a file is submitted (its output is then the batch's own, and may be
        replaced by a rerun even if the driver dies before the result), ``done`` after."""
        with self.path.open("a", encoding="utf-8") as fh:
            for rec in records:
                self.records[rec["key"]] = rec
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
