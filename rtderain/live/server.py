"""``--serve HOST:PORT``: a small web page with the live de-rained view, the raw view beside
it and live stats.

Endpoints (stdlib :class:`http.server.ThreadingHTTPServer`):

* ``/``                the page (two MJPEG views and a stats table refreshed twice a second)
* ``/derained.mjpg``   MJPEG stream (``multipart/x-mixed-replace``) of the de-rained frames
* ``/raw.mjpg``        MJPEG stream of the input frames
* ``/derained.jpg``, ``/raw.jpg``  the latest frame as one JPEG
* ``/stats.json``      the counters (:class:`~rtderain.live.stats.StatsSnapshot`)

Access: a ``Host`` header that names neither a loopback name, an IP address, the bound
name nor this machine's hostname is refused with 403 (DNS rebinding: a web page cannot
rename its own site to reach the view). A bind that is not loopback requires a token (one
is generated with :mod:`secrets` unless given): ``?token=`` on any URL (on ``/`` it sets a
cookie and redirects, so the page's own requests carry it), the cookie, or
``Authorization: Bearer TOKEN``; anything else gets 401. Connections are capped (503
beyond the cap) and an idle socket is closed after ``idle_timeout`` seconds.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from rtderain.errors import RTDerainError
from rtderain.live.sinks import OutputFrame
from rtderain.util import redact_url

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


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_loopback(address: str) -> bool:
    return address == "localhost" or _is_ip(address) and ipaddress.ip_address(address).is_loopback


def host_of(header: str) -> str:
    """The name in a ``Host`` header (``name``, ``name:port``, ``[v6]:port``), lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    name, sep, port = header.rpartition(":")
    return name.rstrip(".") if sep and port.isdigit() and ":" not in name else header.rstrip(".")


def host_allowed(header: str | None, names: set[str]) -> bool:
    """Whether a request's ``Host`` may reach the view: no header (HTTP/1.0 tools), an IP
    address, or one of ``names``. A rebinding attack needs a DNS name of the attacker's, so
    every other name is refused."""
    if not header:
        return True
    name = host_of(header)
    return _is_ip(name) or name in names


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` at once (503 beyond)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, max_connections: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        if not self.slots.acquire(blocking=False):
            log.debug("serve: connection cap reached, 503 to %s", client_address[0])
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


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


@dataclass(frozen=True)
class Access:
    """Who may see the view: the token (None: no token needed, loopback binds only), the
    accepted ``Host`` names and the token cookie's name."""

    token: str | None
    names: frozenset[str]
    cookie: str

    def token_ok(self, given: str | None) -> bool:
        return self.token is None or given is not None and hmac.compare_digest(
            given.encode(), self.token.encode())


class ServeSink:
    """A sink that serves the page above on ``host:port`` (JPEG quality ``quality``).

    The server starts in the constructor (so a busy port fails before the run starts) and
    stops in :meth:`close`; open MJPEG connections end then too. ``token``: required of
    every request (see the module docstring); a bind that is not loopback gets a generated
    one when None (``generated_token`` is then True). At most ``max_connections`` at once;
    a socket idle for ``idle_timeout`` seconds is closed.
    """

    name = "serve"
    lossless = False

    def __init__(self, address: str, stats: Callable[[], dict], source_label: str = "",
                 quality: int = 80, token: str | None = None, max_connections: int = 8,
                 idle_timeout: float = 10.0) -> None:
        host, port = parse_address(address)
        self.views = {"derained": _Latest(), "raw": _Latest()}
        self.stats = stats
        self.quality = quality
        label = source_label.replace("&", "&amp;").replace("<", "&lt;")

        def page() -> bytes:
            return PAGE.format(source=label, rows=stats_rows(stats())).encode()

        handler = _make_handler(self.views, stats, page, idle_timeout)
        try:
            self.httpd = _Server((host, port), handler, max_connections)
        except OSError as exc:
            raise RTDerainError(f"cannot serve on {address}: {exc.strerror or exc}") from None
        self.address = self.httpd.server_address[:2]
        self.loopback = _is_loopback(self.address[0])
        self.generated_token = token is None and not self.loopback
        self.token = secrets.token_urlsafe(18) if self.generated_token else token
        hostname = socket.gethostname().lower()
        names = {"localhost", hostname, hostname.partition(".")[0], host.lower()}
        self.httpd.access = Access(self.token, frozenset(names), f"rtderain_token_{port}")
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
            name="rtderain-serve", daemon=True,
        )
        self.thread.start()
        if self.loopback:
            log.info("serving the live view on %s", self.url)
        else:
            log.warning("the live view on %s is reachable from the network (bound to %s); "
                        "every request needs the token", self.url, self.address[0])

    @property
    def url(self) -> str:
        """The page's address (this machine's hostname for a wildcard bind), no token."""
        host, port = self.address
        if ipaddress.ip_address(host).is_unspecified:
            host = socket.gethostname()
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

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
                  page: Callable[[], bytes], idle_timeout: float) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "rtderain-live"
        timeout = idle_timeout  # socket timeout: an idle or stalled client is dropped

        def log_message(self, fmt: str, *args: object) -> None:
            log.debug("%s", redact_url("serve: " + fmt % args))

        def _allowed(self, query: dict[str, list[str]]) -> bool:
            """Host and token checks; sends the refusal itself (403 or 401)."""
            access: Access = self.server.access
            if not host_allowed(self.headers.get("Host"), access.names):
                self.send_error(HTTPStatus.FORBIDDEN, "unknown Host (DNS rebinding?)")
                return False
            bearer = self.headers.get("Authorization", "")
            cookie = SimpleCookie()
            try:
                cookie.load(self.headers.get("Cookie", ""))
            except Exception:  # a malformed Cookie header: as if there were none
                cookie = SimpleCookie()
            given = [*query.get("token", [])[:1],
                     bearer[7:].strip() if bearer.lower().startswith("bearer ") else None,
                     cookie[access.cookie].value if access.cookie in cookie else None]
            if access.token is None or any(access.token_ok(g) for g in given if g):
                return True
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", 'Bearer realm="rtderain live"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            body = b"token required: open the URL with ?token=... printed at start\n"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return False

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlsplit(self.path)
            path, query = url.path, parse_qs(url.query)
            if not self._allowed(query):
                return
            name, _, ext = path.strip("/").partition(".")
            if path in ("/", "/index.html") and "token" in query and self.server.access.token:
                self._token_cookie(path)
            elif path in ("/", "/index.html"):
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

        def _token_cookie(self, path: str) -> None:
            """``/?token=``: keep the token in a cookie and reload without it."""
            access: Access = self.server.access
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Set-Cookie", f"{access.cookie}={access.token}; Path=/; "
                                           "HttpOnly; SameSite=Strict")
            self.send_header("Location", path)
            self.send_header("Content-Length", "0")
            self.end_headers()

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
            except OSError as exc:  # gone, reset, or not reading for idle_timeout seconds
                log.debug("serve: MJPEG client went away (%s)", exc)

    return Handler
