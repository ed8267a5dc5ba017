"""Planning a batch: inputs found, outputs mirrored, bad inputs refused with their line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtderain.batch.inputs import plan_batch
from rtderain.errors import RTDerainError


def _touch(root: Path, *names: str) -> Path:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return root


def test_folder_is_searched_recursively_and_mirrored(tmp_path):
    src = _touch(tmp_path / "in", "a.mp4", "sub/b.MKV", "sub/deep/c.mov", "notes.txt",
                 ".hidden.mp4", ".cache/d.mp4", "sub/.e.tmp.mp4")
    items = plan_batch([str(src)], tmp_path / "out")
    assert [i.key for i in items] == ["a.mp4", "sub/b.MKV", "sub/deep/c.mov"]
    assert items[2].target == tmp_path / "out" / "sub" / "deep" / "c.mov"


def test_glob_mirrors_below_its_fixed_part(tmp_path, monkeypatch):
    _touch(tmp_path / "in", "x/a.mp4", "y/b.mp4", "y/c.mkv")
    monkeypatch.chdir(tmp_path)
    items = plan_batch(["in/**/*.mp4"], "out")
    assert [i.key for i in items] == ["x/a.mp4", "y/b.mp4"]


def test_text_csv_and_jsonl_manifests(tmp_path):
    _touch(tmp_path / "in", "a.mp4", "b.mp4", "sub/c.mp4")
    (tmp_path / "in" / "list.txt").write_text("# archive\na.mp4\n\nsub/c.mp4\n")
    items = plan_batch([], tmp_path / "out", tmp_path / "in" / "list.txt")
    assert [i.key for i in items] == ["a.mp4", "sub/c.mp4"]

    (tmp_path / "list.csv").write_text("input,output,crf,codec\nin/a.mp4,x/a.mkv,23,hevc\n"
                                       "in/b.mp4,,,\n")
    items = plan_batch([], tmp_path / "out", tmp_path / "list.csv")
    assert [(i.key, i.options) for i in items] == [("x/a.mkv", {"crf": 23, "codec": "hevc"}),
                                                   ("in/b.mp4", {})]
    lines = [{"input": str(tmp_path / "in/a.mp4"), "preset": "veryfast"}, {"input": "in/b.mp4"}]
    (tmp_path / "list.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    items = plan_batch([], tmp_path / "out", tmp_path / "list.jsonl")
    assert [(i.key, i.options) for i in items] == [("in/a.mp4", {"preset": "veryfast"}),
                                                   ("in/b.mp4", {})]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("input\nin/a.mp4\nin/gone.mp4\n", "list.csv line 3: input not found"),
        ("input\nin/notes.txt\n", "list.csv line 2: not a video file"),
        ("input,speed\nin/a.mp4,2\n", "list.csv line 2: unknown column 'speed'"),
        ("input,crf\nin/a.mp4,high\n", "list.csv line 2: crf 'high' is not an integer"),
        ("path\nin/a.mp4\n", "list.csv line 1: a CSV manifest needs an 'input' column"),
        ("input,output\nin/a.mp4,x.mp4\nin/b.mp4,x.mp4\n", "duplicate output"),
    ],
)
def test_bad_manifest_lines_name_the_line(tmp_path, text, message):
    _touch(tmp_path / "in", "a.mp4", "b.mp4", "notes.txt")
    (tmp_path / "list.csv").write_text(text)
    with pytest.raises(RTDerainError, match=message):
        plan_batch([], tmp_path / "out", tmp_path / "list.csv")


def test_duplicate_output_names_both_inputs(tmp_path):
    _touch(tmp_path, "a/clip.mp4", "b/clip.mp4")
    with pytest.raises(RTDerainError) as err:
        plan_batch([str(tmp_path / "a/clip.mp4"), str(tmp_path / "b/clip.mp4")], tmp_path / "o")
    assert "a/clip.mp4" in str(err.value) and "b/clip.mp4" in str(err.value)


def test_output_inside_the_input_tree_is_refused(tmp_path, monkeypatch):
    src = _touch(tmp_path / "in", "a.mp4")
    with pytest.raises(RTDerainError, match="inside the input folder"):
        plan_batch([str(src)], src / "clean")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RTDerainError, match="matches the input pattern"):
        plan_batch(["**/*.mp4"], "clean")
    assert [i.key for i in plan_batch(["in/*.mp4"], "clean")] == ["a.mp4"]


def test_missing_and_non_video_arguments(tmp_path):
    _touch(tmp_path, "notes.txt", "empty/readme.md")
    for arg, message in [("gone.mp4", "input not found"), ("notes.txt", "not a video file"),
                         ("empty", "no video files"), ("*.mkv", "matches no video file")]:
        with pytest.raises(RTDerainError, match=message):
            plan_batch([str(tmp_path / arg)], tmp_path / "out")


def test_jobs_share_the_default_memory_budget(make_clips, tmp_path, monkeypatch) -> None:
    """--jobs N: N worker processes on this machine, each planned with 1/N of the default
    budget; an explicit --max-memory is each worker's own."""
    from click.testing import CliRunner

    import rtderain.batch.driver as driver
    from rtderain import resources
    from rtderain.cli.batch import batch

    seen = []
    monkeypatch.setattr(driver, "run_batch", lambda items, options, event: seen.append(
        options.settings) or (_ for _ in ()).throw(SystemExit(0)))
    src = make_clips(["a.mp4"])
    for args in (["--jobs", "2"], ["--jobs", "2", "--max-memory", "3G"], []):
        CliRunner().invoke(batch, [str(src), "--out-dir", str(tmp_path / "out"), *args])
    assert [s.max_memory for s in seen] == [str(resources.default_budget() // 2), "3G", "auto"]
    assert resources.parse_memory(seen[0].max_memory) == resources.default_budget() // 2
