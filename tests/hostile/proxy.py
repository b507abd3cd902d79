"""A fault-injecting HTTP proxy in front of the emulator, and a foreign host that records what reaches it.

The proxy forwards every POST to the emulator unchanged, except the requests a test asked it to answer
itself (:meth:`HostileProxy.inject`): a redirect, an HTML page, an empty body, an answer echoing the token,
a ``Retry-After``. A rule can also let the emulator answer first and rewrite its answer (a per-record error
echoing the token). It imports nothing of ours: it stands for the network, not for our code."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], bytes]
"""Status, headers, body."""
Upstream = Callable[[], Reply]


@dataclass
class Rule:
    method: str
    """The API method it answers (``market/products/import``), or ``*``."""
    answer: Callable[[bytes, Upstream], Reply]
    times: int = 1
    """How many requests it answers; then the emulator answers again (``-1``: every one)."""
    used: int = 0


@dataclass
class Recorder:
    """What reached a host: (method, path, body) of every request."""

    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, verb: str, path: str, body: bytes) -> None:
        with self.lock:
            self.requests.append((verb, path, body))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, reply: Reply) -> None:
        status, headers, body = reply
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, verb: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.recorder.add(verb, self.path, body)
        owner = self.server.owner
        if owner is None:  # the foreign host: takes everything, answers an empty 200
            self._reply((200, {}, b""))
            return
        self._reply(owner.answer(self.path, body, dict(self.headers)))

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    recorder: Recorder
    owner: HostileProxy | None


class Host:
    """A bare HTTP host on loopback: the proxy's server, or a foreign host that records and answers 200."""

    def __init__(self, owner: HostileProxy | None = None) -> None:
        self.recorder = Recorder()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.recorder, self._server.owner = self.recorder, owner
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Host:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class HostileProxy:
    """Forwards to ``upstream`` (the emulator's API URL) except where a rule answers."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/") + "/"
        self.rules: list[Rule] = []
        self._lock = threading.Lock()
        self.host = Host(self)

    @property
    def url(self) -> str:
        return self.host.base + "/api/v1.1/"

    @property
    def received(self) -> list[tuple[str, str, bytes]]:
        return self.host.recorder.requests

    def start(self) -> HostileProxy:
        self.host.start()
        return self

    def stop(self) -> None:
        self.host.stop()

    def inject(self, method: str, answer: Callable[[bytes, Upstream], Reply], times: int = 1) -> Rule:
        rule = Rule(method, answer, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def answer(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        method = path.split("/api/v1.1/", 1)[-1].strip("/")
        with self._lock:
            rule = next((r for r in self.rules if r.method in (method, "*") and (r.times < 0 or r.used < r.times)),
                        None)
            if rule is not None:
                rule.used += 1
        forward = lambda: self._forward(method, body, headers)  # noqa: E731
        return rule.answer(body, forward) if rule else forward()

    def _forward(self, method: str, body: bytes, headers: dict[str, str]) -> Reply:
        keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "authorization")}
        req = urllib.request.Request(self.upstream + method, data=body, headers=keep, method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:  # the emulator answers 200 to every API call
            return resp.status, {"Content-Type": resp.headers.get("Content-Type", "application/json")}, resp.read()


def fixed(status: int, body: bytes | str = b"", **headers: str) -> Callable[[bytes, Upstream], Reply]:
    """An answer that is always the same (the emulator is not asked)."""
    data = body.encode() if isinstance(body, str) else body
    return lambda _body, _up: (status, dict(headers), data)
