"""Hostile networks and hostile input (issue 25): the emulator behind a fault-injecting proxy, a foreign
host, a small demo shop, and the CLI run as a separate process so its stdout and stderr can be read."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
import yaml

from sandbox.emulator import AltcraftEmulator
from tests.helpers import build_shop, shop_config
from tests.hostile.proxy import Host, HostileProxy

ROOT = Path(__file__).parents[2]
SECRET = 's3cr/et+Tok"en-5f1c9e&x'
"""A token whose URL-encoded and JSON-escaped forms differ from it, so each must be masked on its own."""
ORDERS = 40


def secret_forms(secret: str = SECRET) -> list[bytes]:
    """The token as a server or a library may echo it: raw, URL-encoded, JSON-escaped."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), orjson.dumps(secret).decode()[1:-1]}
    return [f.encode() for f in forms]


def leaks(data: bytes, secret: str = SECRET) -> list[bytes]:
    return [f for f in secret_forms(secret) if f in data]


@dataclass
class Hostile:
    emulator: AltcraftEmulator
    proxy: HostileProxy
    foreign: Host
    tmp: Path
    config: Path
    shop_url: str

    def state_bytes(self) -> bytes:
        """Every byte of the state database (the SQLite file, its WAL and the in-flight notes)."""
        return b"".join(p.read_bytes() for p in sorted(self.tmp.glob("state.db*")) if p.is_file())

    def sync(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``altcraft-sync <args> --config ...`` in a process of its own, locally (no Prefect)."""
        command = args or ("sync",)
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        run_env.update({"PREFECT_HOME": str(self.tmp / "prefect-home"), **(env or {})})
        return subprocess.run([sys.executable, "-m", "cli.main", *command, "--local", "--config", str(self.config)],
                              cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300)

    def edit_config(self, **altcraft: Any) -> None:
        raw = yaml.safe_load(self.config.read_text())
        raw["altcraft"].update(altcraft)
        self.config.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture
def hostile(tmp_path):
    emu = AltcraftEmulator(token=SECRET, strict_data=True).start()
    proxy = HostileProxy(emu.url).start()
    foreign = Host().start()
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=ORDERS)
    config = shop_config(tmp_path, url, SimpleNamespace(url=proxy.url), SECRET)
    h = Hostile(emu, proxy, foreign, tmp_path, config, url)
    h.edit_config(backoff_initial=0.01, backoff_max=0.05, max_attempts=4, requests_per_second=1000)
    yield h
    foreign.stop()
    proxy.stop()
    emu.stop()
