"""The emulator's HTTP layer: a threading server, the API route and the control route (faults, store)."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import orjson

from sandbox.emulator_digest import digest
from sandbox.emulator_store import KINDS, Account

API_PREFIX = "/api/v1.1/"
CONTROL_PREFIX = "/__emulator/"
MAX_BODY_BYTES = 10 * 1024 * 1024  # api.md §0: "limited by default to 10 MB"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    emulator: Account


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests capture logs
        return

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        emu = self.server.emulator
        if self.path.startswith(CONTROL_PREFIX + "stats"):
            with emu.lock:
                counts = {k: len(getattr(emu.store, k)) for k in KINDS}
                self._send(200, {"stats": dict(emu.stats), "stored": counts})
        elif self.path.startswith(CONTROL_PREFIX + "faults"):
            self._send(200, emu.faults.__dict__)
        elif self.path.startswith((CONTROL_PREFIX + "digest/", CONTROL_PREFIX + "store/")):
            self._records(emu)
        else:
            self._send(404, {"error": 404, "error_text": "not found"})

    def _records(self, emu: Account) -> None:
        """``digest/<kind>``: every stored record's canonical hash; ``store/<kind>?ids=a,b``: those records."""
        action, _, rest = self.path[len(CONTROL_PREFIX):].partition("/")
        kind, _, query = rest.partition("?")
        if kind not in KINDS:
            self._send(404, {"error": 404, "error_text": f"unknown kind {kind!r}"})
            return
        with emu.lock:
            stored = dict(getattr(emu.store, kind))
        if action == "digest":
            self._send(200, {"count": len(stored), "items": digest(stored)})
            return
        ids = parse_qs(query).get("ids", [""])[0].split(",")
        self._send(200, {ext: stored.get(ext) for ext in ids if ext})

    def do_POST(self) -> None:
        emu = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, {"error": 413, "error_text": "request body too large"})
            return
        raw = self.rfile.read(length)
        if self.path.startswith(CONTROL_PREFIX):
            self._control(emu, raw)
            return
        if not self.path.startswith(API_PREFIX):
            self._send(404, {"error": 404, "error_text": "not found"})
            return
        with emu.lock:
            emu.in_flight += 1
            emu.stats["max_in_flight"] = max(emu.stats["max_in_flight"], emu.in_flight)
        try:
            self._api(emu, raw)
        finally:
            with emu.lock:
                emu.in_flight -= 1

    def _api(self, emu: Account, raw: bytes) -> None:
        fault = emu.injected_fault()
        if fault is not None:
            kind, detail = fault
            if kind == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            status, headers = detail
            self._send(status, {"error": status, "error_text": "injected fault"}, headers)
            return
        try:
            body = orjson.loads(raw)
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            self._send(200, {"error": 400, "error_text": "incorrect request: body is not a JSON object"})
            return
        auth = self.headers.get("Authorization") or ""
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        self._send(200, emu.handle(self.path[len(API_PREFIX):].strip("/"), body, bearer))

    def _control(self, emu: Account, raw: bytes) -> None:
        action = self.path[len(CONTROL_PREFIX):].strip("/")
        try:
            if action == "faults":
                emu.faults.update(orjson.loads(raw or b"{}"))
                self._send(200, emu.faults.__dict__)
            elif action == "reset":
                kinds = (orjson.loads(raw or b"{}") or {}).get("kinds")
                if kinds is not None and not set(kinds) <= set(KINDS):
                    raise ValueError(f"reset: unknown kinds in {kinds!r}")
                emu.reset(kinds)
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": 404, "error_text": f"unknown control {action!r}"})
        except ValueError as err:
            self._send(400, {"error": 400, "error_text": str(err)})
