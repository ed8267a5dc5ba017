"""What a batch is: every input file and its output, checked before any work starts.

Inputs are files, folders (searched recursively for video files), glob patterns, or a
manifest: a text file of paths (one a line, ``#`` comments), or a CSV / JSONL file with an
``input`` column, an optional ``output`` and optional per-file encoder options (``codec``,
``crf``, ``preset``, ``pix_fmt``). Outputs mirror the input tree under the output folder.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtderain.errors import RTDerainError

VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mkv .mov .avi .webm .ts .mts .m2ts .mpg .mpeg .wmv .flv .3gp .mxf .ogv".split()
)
# Per-file options a manifest may give, and how each value is read.
FILE_OPTIONS = {"codec": str, "crf": int, "preset": str, "pix_fmt": str}


@dataclass(frozen=True)
class BatchItem:
    """One input video and its output.

    Attributes:
        source: the input file.
        target: the output file (under the batch's output folder unless a manifest named
            an absolute path).
        key: the output's path relative to the output folder (the journal's key).
        where: where the input came from, for messages (``list.csv line 4``, ``in/``).
        options: per-file encoder options from a manifest (fields of ``EncodeOptions``).
    """

    source: Path
    target: Path
    key: str
    where: str
    options: dict[str, Any] = field(default_factory=dict)


def is_video_name(path: Path) -> bool:
    """Whether ``path`` has a video file suffix and is not hidden (temporary files are)."""
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")


def plan_batch(
    inputs: tuple[str, ...] | list[str], out_dir: str | Path, manifest: str | Path | None = None
) -> list[BatchItem]:
    """Every (input, output) of a batch, in a stable order; errors name the bad input.

    Raises:
        RTDerainError: no input; a missing or non-video file (with its manifest line); an
            empty folder or a glob with no match; two inputs with one output; an output that
            is an input, or inside an input folder (a rerun would pick it up again).
    """
    out = Path(out_dir)
    items: list[BatchItem] = []
    scanned: list[Path] = []  # input folders: no output may land inside one
    patterns: list[str] = []
    if manifest is not None:
        items += _read_manifest(Path(manifest), out)
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_video_name(p)
                           and not _hidden_below(p, path))
            if not found:
                raise RTDerainError(f"input folder {path}: no video files in it "
                                    f"({', '.join(sorted(VIDEO_SUFFIXES))})")
            scanned.append(path)
            items += [_item(p, out, p.relative_to(path), f"{raw}") for p in found]
        elif glob.has_magic(raw):
            found = sorted(Path(p) for p in glob.glob(raw, recursive=True)
                           if Path(p).is_file() and is_video_name(Path(p)))
            if not found:
                raise RTDerainError(f"input pattern {raw!r}: matches no video file")
            base = Path(_glob_base(raw))
            patterns.append(raw)
            items += [_item(p, out, p.relative_to(base), f"pattern {raw!r}") for p in found]
        else:
            _check_video(path, f"input {raw}")
            items.append(_item(path, out, Path(path.name), f"input {raw}"))
    if not items:
        raise RTDerainError("no input given (usage: rtderain batch INPUT... --out-dir DIR)")
    _check_outputs(items, out, scanned, patterns)
    return items


def _item(src: Path, out: Path, rel: Path, where: str, options: dict | None = None) -> BatchItem:
    target = out / rel
    return BatchItem(src, target, _key(target, out), where, options or {})


def _key(target: Path, out: Path) -> str:
    try:
        return target.relative_to(out).as_posix()
    except ValueError:
        return str(target.resolve())


def _hidden_below(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _glob_base(pattern: str) -> str:
    """The folder part of ``pattern`` before its first wildcard (outputs mirror below it)."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        base.append(part)
    return os.path.join(*base) if base else "."


def _check_video(path: Path, where: str) -> None:
    if not path.exists():
        raise RTDerainError(f"{where}: input not found: {path}")
    if not path.is_file():
        raise RTDerainError(f"{where}: not a file: {path}")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise RTDerainError(f"{where}: not a video file: {path} (suffix {path.suffix or 'none'!r};"
                            f" videos are {', '.join(sorted(VIDEO_SUFFIXES))})")


def _read_manifest(path: Path, out: Path) -> list[BatchItem]:
    """The items of a manifest; relative inputs are relative to the manifest's folder."""
    if not path.is_file():
        raise RTDerainError(f"manifest not found: {path}")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RTDerainError(f"manifest {path}: cannot read it ({exc})") from None
    if suffix == ".csv":
        rows = _csv_rows(path, text)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path, text)
    else:
        rows = [(n, {"input": line.strip()}) for n, line in enumerate(text.splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("#")]
    items = []
    for number, row in rows:
        where = f"{path} line {number}"
        items.append(_manifest_item(path.parent, out, row, where))
    if not items:
        raise RTDerainError(f"manifest {path}: lists no input")
    return items


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    if "input" not in columns:
        raise RTDerainError(f"manifest {path} line 1: a CSV manifest needs an 'input' column "
                            f"(header: {','.join(columns) or 'empty'})")
    rows = []
    for row in reader:
        if row.get(None):  # more cells than header columns
            raise RTDerainError(f"manifest {path} line {reader.line_num}: more cells than "
                                f"columns in the header")
        clean = {k.strip(): v.strip() for k, v in row.items() if k and v is not None and v.strip()}
        if clean:
            rows.append((reader.line_num, clean))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RTDerainError(f"manifest {path} line {number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise RTDerainError(f"manifest {path} line {number}: expected a JSON object")
        rows.append((number, row))
    return rows


def _manifest_item(base: Path, out: Path, row: dict[str, Any], where: str) -> BatchItem:
    unknown = sorted(set(row) - {"input", "output"} - set(FILE_OPTIONS))
    if unknown:
        raise RTDerainError(f"{where}: unknown column {unknown[0]!r} (known: input, output, "
                            f"{', '.join(FILE_OPTIONS)})")
    if not row.get("input"):
        raise RTDerainError(f"{where}: no input")
    src = Path(str(row["input"]))
    src = src if src.is_absolute() else base / src
    _check_video(src, where)
    options = {}
    for name, kind in FILE_OPTIONS.items():
        if row.get(name) not in (None, ""):
            try:
                options[name] = kind(row[name])
            except (TypeError, ValueError):
                raise RTDerainError(f"{where}: {name} {row[name]!r} is not "
                                    f"{'an integer' if kind is int else 'text'}") from None
    if row.get("output"):
        target = Path(str(row["output"]))
        target = target if target.is_absolute() else out / target
    else:
        try:
            rel = src.resolve().relative_to(base.resolve())
        except ValueError:
            rel = Path(src.name)
        target = out / rel
    if target.suffix.lower() not in VIDEO_SUFFIXES:
        raise RTDerainError(f"{where}: output {target} needs a video suffix (.mp4, .mkv, ...)")
    return BatchItem(src, target, _key(target, out), where, options)


def _check_outputs(
    items: list[BatchItem], out: Path, scanned: list[Path], patterns: list[str]
) -> None:
    """Refuse two inputs with one output, an output that is an input, and outputs that a
    rerun would find again as inputs (inside an input folder or matching an input glob)."""
    seen: dict[Path, BatchItem] = {}
    sources = {item.source.resolve() for item in items}
    folders = [f.resolve() for f in scanned]
    for item in items:
        key = item.target.resolve()
        if key in seen:
            first = seen[key]
            raise RTDerainError(
                f"duplicate output {item.target}: {first.source} ({first.where}) and "
                f"{item.source} ({item.where}) would both be written there")
        seen[key] = item
        if key in sources:
            raise RTDerainError(f"{item.where}: output {item.target} is an input of this batch")
        for folder in folders:
            if key.is_relative_to(folder):
                raise RTDerainError(
                    f"output {item.target} is inside the input folder {folder}: a rerun would "
                    f"pick it up as an input; choose an --out-dir outside it")
        for pattern in patterns:
            if _would_match(key, pattern):
                raise RTDerainError(
                    f"output {item.target} matches the input pattern {pattern!r}: a rerun "
                    f"would pick it up as an input; choose an --out-dir outside it")


def _would_match(path: Path, pattern: str) -> bool:
    """Whether a file at ``path`` (absolute) would match ``pattern`` on a rerun."""
    if "**" in pattern:
        return path.is_relative_to(Path(_glob_base(pattern)).resolve())
    parts = Path(os.path.abspath(pattern)).parts
    return len(parts) == len(path.parts) and all(
        fnmatch.fnmatchcase(a, b) for a, b in zip(path.parts, parts, strict=True))
