"""Helpers for the live tests: synthetic rainy media, an RTSP server process, engines."""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SYSTEM_PYTHON = "/usr/bin/python3"
CODE_BITS = 10  # frame index drawn as 10 black/white blocks along the top
BLOCK = 16

RTSP_SERVER = r'''
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer

Gst.init(None)
clip, port = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( filesrc location={clip} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )")
factory.set_shared(True)
server.get_mount_points().add_factory("/rain", factory)
if server.attach(None) == 0:
    sys.exit("cannot bind 127.0.0.1:" + port)
print("ready", flush=True)
GLib.MainLoop().run()
'''


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rainy_frame(i: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A moving scene (gradient + bars) with bright rain streaks and frame index ``i`` coded
    in the top-left blocks. (H, W, 3) uint8 RGB."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 60 + 80 * x / width
    img[..., 1] = 90 + 60 * y / height
    img[..., 2] = 120 + 40 * np.sin((x + 4 * i) / 23.0)
    bar = ((x + 6 * i) // 40) % 2 == 0
    img[bar & (y > 2 * BLOCK)] *= 0.7
    rain = np.zeros((height, width), np.float32)
    for _ in range(120):  # short slanted streaks
        x0, y0, length = rng.integers(0, width), rng.integers(0, height), rng.integers(6, 18)
        for t in range(length):
            yy, xx = y0 + t, x0 + t // 3
            if yy < height and xx < width:
                rain[yy, xx] = 90
    img += rain[..., None]
    out = np.clip(img, 0, 255).astype(np.uint8)
    for b in range(CODE_BITS):
        out[:BLOCK, b * BLOCK:(b + 1) * BLOCK] = 255 if (i >> b) & 1 else 0
    return out


def read_code(rgb: np.ndarray) -> int:
    """The frame index drawn by :func:`rainy_frame` (robust to codec loss and mild filters)."""
    value = 0
    for b in range(CODE_BITS):
        block = rgb[3:BLOCK - 3, b * BLOCK + 3:(b + 1) * BLOCK - 3]
        if block.mean() > 127:
            value |= 1 << b
    return value


def make_rainy_clip(path: Path, seconds: float, width: int = 320, height: int = 240,
                    fps: int = 25) -> list[np.ndarray]:
    """Write an H.264 mp4 (keyframe every second, no B-frames); returns the RGB frames."""
    rng = np.random.default_rng(7)
    frames = []
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps,
                                options={"g": str(fps), "bf": "0", "crf": "18",
                                         "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(round(seconds * fps)):
            rgb = rainy_frame(i, width, height, rng)
            frames.append(rgb)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return frames


def gst_rtsp_missing() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found (GStreamer RTSP server runs with Debian's python3)"
    probe = ("import gi; gi.require_version('Gst', '1.0'); "
             "gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "import sys; sys.exit(0 if all(Gst.ElementFactory.find(e) for e in "
             "('qtdemux', 'h264parse', 'rtph264pay', 'filesrc')) else 3)")
    res = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=60)
    if res.returncode != 0:
        return ("GStreamer RTSP server missing: apt-get install python3-gi "
                "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad "
                "(or run .ci/install-live.sh)")
    return None


class RTSPServer:
    """A GStreamer RTSP server process on 127.0.0.1 serving ``clip`` at ``url``."""

    def __init__(self, clip: Path, workdir: Path) -> None:
        self.clip = clip
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/rain"
        self.script = workdir / "rtsp_server.py"
        self.script.write_text(RTSP_SERVER)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(self.script), str(self.clip), str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else "(no answer)"
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {line!r}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class SleepEngine:
    """Identity engine that sleeps ``seconds`` per call: inference slower than the camera."""

    name = "sleep"
    multiple = 1

    def __init__(self, seconds: float) -> None:
        import torch

        self.seconds = seconds
        self.device = torch.device("cpu")
        self.description = f"identity + {seconds * 1000:.0f} ms sleep"

    def infer(self, x):
        time.sleep(self.seconds)
        return x


def perturbed_engine():
    """mgid-rt with a random (seeded) rain head on the torch backend: unlike the untrained
    identity network, its output differs clearly from its input, so "de-rained" can be
    checked against offline processing."""
    import torch

    from rtderain.backends.torch_backend import TorchEngine
    from rtderain.models import build_model

    model = build_model("mgid-rt")
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=gen) * 0.02)
        model.head.bias.fill_(0.05)
    return TorchEngine(model.eval(), "cpu", "fp32")


class LiveRun:
    """:func:`run_live` in a thread, with its stats and stop event, for tests."""

    def __init__(self, source, engine, sinks, options) -> None:
        from rtderain.live.session import run_live
        from rtderain.live.stats import LiveStats

        self.stats = LiveStats()
        self.stop = threading.Event()
        self.summary = None
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.summary = run_live(source, engine, sinks, options, stats=self.stats,
                                        stop=self.stop)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def wait_for(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.finish()
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                     f"stats: {self.stats.snapshot().line()}")
            if not self.thread.is_alive():
                raise AssertionError(f"live run ended early ({self.error!r}) waiting for {what}")
            time.sleep(0.05)

    def finish(self, timeout: float = 60.0):
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "live run did not stop"
        if self.error is not None:
            raise self.error
        return self.summary


def decode_all(path: Path) -> list[tuple[np.ndarray, int, Fraction]]:
    """Every frame of a file: (rgb, pts, time_base)."""
    with av.open(str(path)) as c:
        return [(f.to_ndarray(format="rgb24"), f.pts, f.time_base) for f in c.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
