"""Issue 27: a night's outcome tells the truth. A run counts its own news, not the standing backlog; one bad
record in a small run is a warning; the backlog is a line of its own; Ctrl-C is one line and the next run
resumes and says so. Each through the real command, in a process of its own, against the emulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from altcraft_sync.config import load_config
from connectors.state import StateStore
from engine.planner import key_position
from sandbox import demo_shop as D
from tests.conftest import TOKEN
from tests.helpers import build_shop, db_now, mapped_source, shop_config

ROOT = Path(__file__).parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # no Prefect API: the run is local
    return env


def _sync(tmp_path: Path, cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _cli(tmp_path, cfg, "sync", *args)


def _cli(tmp_path: Path, cfg: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", command, "--config", str(cfg), *args], cwd=ROOT,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300)


def _change(engine: sa.Engine, ids: list[str]) -> None:
    """A real change of these orders (a new status), stamped with the database's clock."""
    with engine.begin() as conn:
        conn.execute(D.orders.update().where(D.orders.c.id.in_([int(i) for i in ids]))
                     .values(state="cancelled", updated_at=db_now(engine)))


def _synced_shop(tmp_path: Path, emulator, orders: int = 60, **kw) -> tuple[sa.Engine, Path]:
    url = f"sqlite:///{tmp_path}/shop.db"
    engine = build_shop(url, orders=orders)
    cfg = shop_config(tmp_path, url, emulator, TOKEN, failure_threshold=0.05, **kw)
    first = _sync(tmp_path, cfg)
    assert first.returncode in (0, 1, 2) and "Traceback" not in first.stderr, first.stdout + first.stderr
    return engine, cfg


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    return [x for x in result.stderr.splitlines() if x.strip()][-1]


def _hint(tmp_path: Path, line: str) -> subprocess.CompletedProcess[str]:
    """Run the command a line names in backquotes, as a person would paste it (from the same directory)."""
    import shlex

    return subprocess.run(shlex.split(line.rsplit("`", 2)[1]), cwd=ROOT, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=300)


def test_a_permanent_rejection_then_quiet_nights_exit_0_with_the_backlog_line(tmp_path, emulator):
    engine, cfg = _synced_shop(tmp_path, emulator)
    victim = sorted(emulator.store.orders, key=int)[3]
    emulator.faults.reject[victim] = [400, "lines[0].count must be positive"]  # 400: permanent (the default)
    _change(engine, [victim])  # inside the lookback of the next runs: they re-read it, unchanged

    rejected = _sync(tmp_path, cfg)
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr  # this run's news: a warning
    assert "1 of" in rejected.stderr and "orders: 1 rejected (Altcraft: lines[0].count must be positive)" in rejected.stderr
    assert "altcraft-sync quarantine --stream orders --config " in _last_line(rejected)
    hinted = _hint(tmp_path, _last_line(rejected))  # the printed command runs as written: this run's config
    assert hinted.returncode == 0 and victim in hinted.stdout, hinted.stdout + hinted.stderr

    for _ in range(2):  # nights with no change: the rejection is the backlog, not news
        quiet = _sync(tmp_path, cfg)
        assert quiet.returncode == 0, quiet.stdout + quiet.stderr
        backlog = [x for x in quiet.stderr.splitlines() if x.startswith("backlog: ")]
        assert len(backlog) == 1 and "(orders: 1 rejected for good, " in backlog[0], quiet.stderr  # and planted invalid
        assert backlog[0].endswith(f"altcraft-sync quarantine --config {cfg}`")
        assert "failed" not in _last_line(quiet)
    runs = StateStore(load_config(cfg).state).last_runs(4)
    assert [r["status"] for r in runs[:3]] == ["completed"] * 3
    status = subprocess.run([sys.executable, "-m", "cli.main", "status", "--config", str(cfg)], cwd=ROOT,
                            env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and "backlog: " in status.stderr and "(orders: 1 rejected for good, " in status.stderr


def test_one_bad_record_in_a_run_of_12_is_a_warning_and_the_rest_go(tmp_path, emulator):
    engine, cfg = _synced_shop(tmp_path, emulator)
    changed = [o for o in sorted(emulator.store.orders, key=int) if emulator.store.orders[o]["status"] != "canceled"][:12]
    bad = changed[5]
    emulator.faults.reject[bad] = [422, "unknown currency"]
    _change(engine, changed)

    result = _sync(tmp_path, cfg, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    import json

    doc = json.loads(result.stdout)
    assert doc["outcome"] == "warnings" and doc["streams"]["orders"]["delivered"] == 11
    assert any("1 of" in w and "orders: 1 rejected" in w for w in doc["warnings"])
    for o in changed:
        if o != bad:
            assert emulator.store.orders[o]["status"] == "canceled"
    assert emulator.store.orders[bad]["status"] != "canceled"


def test_ctrl_c_is_one_line_and_the_next_run_resumes(tmp_path, emulator):
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=400)
    cfg = shop_config(tmp_path, url, emulator, TOKEN, chunk_size=40)
    emulator.faults.latency_ms = 150  # every request slow: the run is still going when it is interrupted
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "sync", "--config", str(cfg), "--stream", "categories",
                             "--stream", "products", "--stream", "skus", "--stream", "orders"], cwd=ROOT,
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = StateStore(load_config(cfg).state)
    deadline = time.monotonic() + 120
    def stands() -> bool:  # a chunk of orders committed: the watermark, or a key-ordered first sync's key position
        return any(state.get_watermark("orders", c) is not None for c in ("orders", key_position("orders")))

    while not stands() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "KeyboardInterrupt" not in out + err
    lines = [x for x in err.splitlines() if "interrupted" in x]
    assert len(lines) == 1 and "committed" in lines[0] and "the next run resumes" in lines[0], err
    runs = state.last_runs(1)
    assert runs[0]["status"] == "interrupted" and "internal error" not in (runs[0]["message"] or "")

    emulator.faults.latency_ms = 0
    again = _sync(tmp_path, cfg)
    assert again.returncode in (0, 1), again.stdout + again.stderr
    assert "resuming after the interrupted run" in again.stdout + again.stderr
    assert emulator.store.orders == mapped_source(cfg)["orders"]
    state.close()


def _lists(emulator) -> int:
    return sum(n for k, n in emulator.stats.items() if k.startswith("method:") and k.endswith("/list"))


def test_a_quiet_night_asks_altcraft_once_and_a_revoked_token_fails_it(tmp_path, emulator):
    """A run with nothing to send has not heard from Altcraft: it reads one record of a list method, so a
    revoked token fails that night with its one line instead of reporting "completed" until the first
    night with changes. A run that sent something heard Altcraft's answer and asks nothing more."""
    engine, cfg = _synced_shop(tmp_path, emulator)
    before = _lists(emulator)
    _change(engine, [sorted(emulator.store.orders, key=int)[2]])
    busy = _sync(tmp_path, cfg, "--stream", "orders")
    assert busy.returncode == 0 and _lists(emulator) == before, busy.stdout + busy.stderr

    quiet = _sync(tmp_path, cfg, "--stream", "orders")
    assert quiet.returncode == 0 and _lists(emulator) == before + 1, quiet.stdout + quiet.stderr
    assert emulator.stats["method:market/orders/list"] == 1  # a list method of the run's own stream

    emulator.token = "revoked-" + TOKEN
    revoked = _sync(tmp_path, cfg, "--stream", "orders")
    assert revoked.returncode == 2, revoked.stdout + revoked.stderr
    assert "Altcraft refused the API token" in _last_line(revoked) and "Traceback" not in revoked.stderr
    assert StateStore(load_config(cfg).state).last_runs(1)[0]["status"] == "failed"
    # a retry with nothing to retry, and a backfill of a window with no orders, ask the same question
    day = "2001-01-0{}"
    for command in (["retry", "--stream", "orders"],
                    ["backfill", "--since", day.format(1), "--until", day.format(2), "--stream", "orders"]):
        done = _cli(tmp_path, cfg, *command)
        assert done.returncode == 2 and "Altcraft refused the API token" in _last_line(done), done.stdout + done.stderr
        last = StateStore(load_config(cfg).state).last_runs(1)[0]
        assert (last["kind"], last["status"]) == (command[0], "failed")
