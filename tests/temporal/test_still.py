"""The still rule's global-shift probe: the crop-first reduction reads what the whole
frame's reduction read, to the bit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rtderain.temporal.still import PROBE, _window, global_shift


def _reduce_then_crop(a: np.ndarray, b: np.ndarray) -> float:
    """The probe as first written: halve the whole frames, then crop the centred square."""
    h, w = a.shape
    f = 2 if min(h, w) >= 64 else 1
    size = (max(1, w // f), max(1, h // f))
    sa, sb = (cv2.resize(x, size, interpolation=cv2.INTER_AREA).astype(np.float32)
              for x in (a, b))
    cw, ch = min(size[0], PROBE), min(size[1], PROBE)
    x0, y0 = (size[0] - cw) // 2, (size[1] - ch) // 2
    sa, sb = (np.ascontiguousarray(x[y0:y0 + ch, x0:x0 + cw]) for x in (sa, sb))
    (dx, dy), _ = cv2.phaseCorrelate(sa, sb, _window((cw, ch)))
    return max(abs(dx), abs(dy)) * f


@pytest.mark.parametrize(("h", "w"), [(1080, 1920), (720, 1280), (144, 176), (100, 900),
                                      (48, 64), (1081, 1919), (63, 65)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_global_shift_reads_what_the_whole_frame_reduction_read(h, w, dtype):
    rng = np.random.default_rng(h * w)
    a = rng.integers(0, 255, (h, w)).astype(dtype)
    b = cv2.GaussianBlur(np.roll(a, 1, axis=1), (3, 3), 0)
    assert global_shift(a, b) == _reduce_then_crop(a, b)
