"""Images keep what the network does not see: alpha (untouched), grey (written as grey);
every file and folder we create follows the umask, which is read without being changed."""

from __future__ import annotations

import logging
import os
import stat

import cv2
import numpy as np
import pytest

from rtderain.backends.base import IdentityEngine
from rtderain.media.transcode import PipelineOptions, derain_video
from rtderain.media.writer import EncodeOptions
from tests.mediagen import moving_pattern, write_video


@pytest.fixture(scope="module")
def derainer():
    from rtderain.api import Derainer

    return Derainer("mgid-rt", engine="torch", device="cpu", batch=2)


def _rgba(h: int = 40, w: int = 56) -> np.ndarray:
    rgb = moving_pattern(3, w, h)
    alpha = (np.arange(w, dtype=np.uint16)[None, :] * 255 // (w - 1)).astype(np.uint8)
    alpha = np.repeat(alpha, h, axis=0)
    alpha[:5] = 0
    return np.dstack([rgb[..., ::-1], alpha])  # BGRA for OpenCV


def _grey(h: int = 40, w: int = 56) -> np.ndarray:
    return moving_pattern(5, w, h)[..., 0].copy()


def _through(derainer, tmp_path, pixels: np.ndarray, ext: str = ".png") -> np.ndarray:
    """Write ``pixels`` (OpenCV order) as a PNG, de-rain it to ``ext``, read it back as is."""
    src, out = tmp_path / "in.png", tmp_path / f"clean{ext}"
    cv2.imwrite(str(src), pixels)
    derainer.image(src, out)
    return cv2.imread(str(out), cv2.IMREAD_UNCHANGED)


def test_alpha_is_carried_through_untouched(derainer, tmp_path):
    bgra = _rgba()
    got = _through(derainer, tmp_path, bgra)
    assert got.shape == bgra.shape  # 4 channels
    assert np.array_equal(got[..., 3], bgra[..., 3])
    want = derainer(np.ascontiguousarray(bgra[..., 2::-1]))  # the RGB de-rained alone
    assert np.array_equal(got[..., 2::-1], want)


def test_grey_stays_grey(derainer, tmp_path):
    grey = _grey()
    got = _through(derainer, tmp_path, grey)
    assert got.ndim == 2 and got.shape == grey.shape
    assert np.abs(got.astype(int) - grey).mean() < 12  # de-rained, not garbage


def test_folder_keeps_alpha_and_grey_per_file(derainer, tmp_path):
    src, out = tmp_path / "frames", tmp_path / "clean"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), _rgba())
    cv2.imwrite(str(src / "b.png"), _grey())
    cv2.imwrite(str(src / "c.png"), _rgba()[..., :3])
    assert derainer.folder(src, out) == 3
    shapes = [cv2.imread(str(out / n), cv2.IMREAD_UNCHANGED).shape
              for n in ("a.png", "b.png", "c.png")]
    assert shapes == [(40, 56, 4), (40, 56), (40, 56, 3)]
    a_in = cv2.imread(str(src / "a.png"), cv2.IMREAD_UNCHANGED)
    a_out = cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(a_in[..., 3], a_out[..., 3])


def test_alpha_into_jpeg_is_one_warning(derainer, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        got = _through(derainer, tmp_path, _rgba(), ".jpg")
    assert len([r for r in caplog.records if "alpha" in r.getMessage()]) == 1
    assert got.shape == (40, 56, 3)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o027], ids=["022", "002", "027"])
def test_outputs_follow_the_umask_which_is_never_changed(tmp_path, monkeypatch, mask):
    from rtderain.media.images import write_image

    old = os.umask(mask)
    try:
        def no_umask(_value):  # another thread's files would get the wrong mode meanwhile
            raise AssertionError("os.umask called: reading the umask must not change it")

        monkeypatch.setattr(os, "umask", no_umask)
        write_image(tmp_path / "one.png", moving_pattern(0, 32, 24))
        src = tmp_path / "in.mp4"
        write_video(src, frames=3, width=32, height=24)
        opts = PipelineOptions(encode=EncodeOptions(codec="libx264", crf=30, preset="ultrafast"))
        derain_video(src, tmp_path / "out.mp4", IdentityEngine(), opts)
    finally:
        monkeypatch.undo()
        os.umask(old)
    for name in ("one.png", "out.mp4"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name


def test_folder_output_follows_the_umask(derainer, tmp_path):
    src, out = tmp_path / "frames", tmp_path / "deep" / "clean"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), _grey())
    old = os.umask(0o002)
    try:
        derainer.folder(src, out)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o775
    assert stat.S_IMODE((out / "a.png").stat().st_mode) == 0o664
