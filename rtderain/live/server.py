"""``--serve HOST:PORT``: a small web page with the live de-rained view, the raw view beside
it and live stats.

Endpoints (stdlib :class:`http.server.ThreadingHTTPServer`):

* ``/``                the page (two MJPEG views and a stats table refreshed twice a second)
* ``/derained.mjpg``   MJPEG stream (``multipart/x-mixed-replace``) of the de-rained frames
* ``/raw.mjpg``        MJPEG stream of the input frames
* ``/derained.jpg``, ``/raw.jpg``  the latest frame as one JPEG
* ``/stats.json``      the counters (:class:`~rtderain.live.stats.StatsSnapshot`)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from rtderain.errors import RTDerainError
from rtderain.live.sinks import OutputFrame

log = logging.getLogger(__name__)

BOUNDARY = "rtderainframe"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>rtderain live</title>
<style>
body {{ background:#181818; color:#eee; font-family:sans-serif; margin:12px; }}
.views {{ display:flex; gap:12px; flex-wrap:wrap; }}
figure {{ margin:0; }} img {{ max-width:48vw; background:#000; display:block; }}
figcaption {{ margin:4px 0; }} table {{ margin-top:10px; border-collapse:collapse; }}
td {{ padding:2px 10px; border-bottom:1px solid #333; }} td:last-child {{ text-align:right; }}
</style></head><body>
<h3>rtderain live: {source}</h3>
<div class="views">
<figure><figcaption>de-rained</figcaption><img id="derained" src="/derained.mjpg"></figure>
<figure><figcaption>input</figcaption><img id="raw" src="/raw.mjpg"></figure>
</div>
<table id="stats">{rows}</table>
<script>
const rows = [["source", s => s.source_state], ["frames in", s => s.captured],
  ["frames out", s => s.processed], ["dropped", s => s.dropped + s.stale],
  ["fps in", s => s.fps_in.toFixed(1)], ["fps out", s => s.fps_out.toFixed(1)],
  ["latency p50 (ms)", s => (1000 * s.latency_p50).toFixed(0)],
  ["latency p95 (ms)", s => (1000 * s.latency_p95).toFixed(0)],
  ["reconnects", s => s.reconnects], ["elapsed (s)", s => s.elapsed.toFixed(1)]];
async function refresh() {{
  try {{
    const s = await (await fetch("/stats.json", {{cache: "no-store"}})).json();
    document.getElementById("stats").innerHTML = rows.map(
      ([k, f]) => `<tr><td>${{k}}</td><td>${{f(s)}}</td></tr>`).join("");
  }} catch (e) {{ document.getElementById("stats").innerHTML = "<tr><td>offline</td></tr>"; }}
}}
refresh(); setInterval(refresh, 500);
</script></body></html>
"""


ROWS = [  # label, stats key, scale, decimals (the page's script mirrors these)
    ("source", "source_state", None, 0), ("frames in", "captured", None, 0),
    ("frames out", "processed", None, 0), ("dropped", "dropped", None, 0),
    ("fps in", "fps_in", 1, 1), ("fps out", "fps_out", 1, 1),
    ("latency p50 (ms)", "latency_p50", 1000, 0), ("latency p95 (ms)", "latency_p95", 1000, 0),
    ("reconnects", "reconnects", None, 0), ("elapsed (s)", "elapsed", 1, 1),
]


def stats_rows(stats: dict) -> str:
    """The stats table rows as HTML (the page is complete before its script runs)."""
    cells = []
    for label, key, scale, decimals in ROWS:
        value = stats[key]
        if key == "dropped":
            value += stats["stale"]
        text = f"{value * scale:.{decimals}f}" if scale is not None else str(value)
        cells.append(f"<tr><td>{label}</td><td>{text}</td></tr>")
    return "".join(cells)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, meaning 127.0.0.1) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise RTDerainError(f"--serve wants HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class _Latest:
    """The newest JPEG of one view, with a sequence number handlers wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.seq = 0
        self.closed = False

    def publish(self, jpeg: bytes) -> None:
        with self.cond:
            self.jpeg, self.seq = jpeg, self.seq + 1
            self.cond.notify_all()

    def wait_newer(self, seq: int, timeout: float) -> tuple[bytes | None, int]:
        with self.cond:
            self.cond.wait_for(lambda: self.closed or self.seq > seq, timeout)
            return self.jpeg, self.seq

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class ServeSink:
    """A sink that serves the page above on ``host:port`` (JPEG quality ``quality``).

    The server starts in the constructor (so a busy port fails before the run starts) and
    stops in :meth:`close`; open MJPEG connections end then too.
    """

    name = "serve"
    lossless = False

    def __init__(self, address: str, stats: Callable[[], dict], source_label: str = "",
                 quality: int = 80) -> None:
        host, port = parse_address(address)
        self.views = {"derained": _Latest(), "raw": _Latest()}
        self.stats = stats
        self.quality = quality
        label = source_label.replace("&", "&amp;").replace("<", "&lt;")

        def page() -> bytes:
            return PAGE.format(source=label, rows=stats_rows(stats())).encode()

        handler = _make_handler(self.views, stats, page)
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise RTDerainError(f"cannot serve on {address}: {exc.strerror or exc}") from None
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address[:2]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
            name="rtderain-serve", daemon=True,
        )
        self.thread.start()
        log.warning("serving the live view on http://%s:%d/", *self.address)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/"

    def _jpeg(self, rgb: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RTDerainError("JPEG encoding failed for the --serve view")
        return buf.tobytes()

    def write(self, item: OutputFrame) -> None:
        self.views["derained"].publish(self._jpeg(item.derained))
        self.views["raw"].publish(self._jpeg(item.source.rgb))

    def close(self) -> None:
        for view in self.views.values():
            view.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _make_handler(views: dict[str, _Latest], stats: Callable[[], dict],
                  page: Callable[[], bytes]) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "rtderain-live"

        def log_message(self, fmt: str, *args: object) -> None:
            log.debug("serve: " + fmt, *args)

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            name, _, ext = path.strip("/").partition(".")
            if path in ("/", "/index.html"):
                self._send(page(), "text/html; charset=utf-8")
            elif path == "/stats.json":
                self._send(json.dumps(stats()).encode(), "application/json")
            elif name in views and ext == "jpg":
                jpeg, _ = views[name].wait_newer(0, 5.0)
                if jpeg is None:
                    self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
                else:
                    self._send(jpeg, "image/jpeg")
            elif name in views and ext == "mjpg":
                self._mjpeg(views[name])
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def _mjpeg(self, view: _Latest) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seq = 0
            try:
                while not view.closed:
                    jpeg, seq_new = view.wait_newer(seq, 1.0)
                    if jpeg is None or seq_new == seq:
                        continue
                    seq = seq_new
                    self.wfile.write(
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n"
                    )
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                log.debug("serve: MJPEG client went away")

    return Handler
