"""An identity network through a lossless codec keeps the levels of a 4:2:0 source: no
luma bias from the YUV <-> RGB conversions (it used to darken by about one level a pass)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from rtderain.backends.base import IdentityEngine
from rtderain.media.transcode import PipelineOptions, derain_video
from rtderain.media.writer import EncodeOptions
from tests.mediagen import write_video


def _random_frame(index: int, width: int, height: int) -> np.ndarray:
    return np.random.default_rng(index).integers(0, 256, (height, width, 3), np.uint8)


def _luma(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray()[: f.height].astype(float) for f in c.decode(video=0)])


@pytest.mark.parametrize(("colorspace", "color_range"), [(6, 1), (1, 1), (1, 2)])
def test_identity_keeps_420_luma_levels(tmp_path, colorspace, color_range):
    src, out, again = tmp_path / "in.mkv", tmp_path / "out.mkv", tmp_path / "again.mkv"
    write_video(src, frames=3, width=64, height=48, codec="ffv1", colorspace=colorspace,
                color_range=color_range, frame_fn=_random_frame)
    opts = PipelineOptions(encode=EncodeOptions(codec="ffv1", pix_fmt="yuv420p"))
    derain_video(src, out, IdentityEngine(), opts)
    derain_video(out, again, IdentityEngine(), opts)  # a second pass: no drift either
    y0, y1, y2 = _luma(src), _luma(out), _luma(again)
    assert abs((y1 - y0).mean()) < 0.5, (y1 - y0).mean()
    assert abs((y2 - y0).mean()) < 0.5, (y2 - y0).mean()
