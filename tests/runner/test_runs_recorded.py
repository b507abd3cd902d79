"""What the state database records of a run (runner/runs.py): an interrupted run's message counts the
chunk whose commit was in flight at Ctrl-C; ``retry`` is recorded like any run (kind ``retry``)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from altcraft_sync.config import StateSettings, load_config
from connectors.state import StateStore
from engine.stats import StreamStats
from runner.runs import LocalHost, guarded, publish, retry_streams
from tests.conftest import TOKEN
from tests.helpers import build_shop, run_all, shop_config


class _InFlight:
    """A syncer whose last chunk (skus) is still committing on another thread when the run is interrupted;
    ``close`` waits for it, as the pipeline's does."""

    def __init__(self) -> None:
        self.on_progress = lambda stats: None
        self._commit: threading.Thread | None = None

    def interrupt_while_committing(self) -> dict[str, StreamStats]:
        for name in ("categories", "products"):
            s = StreamStats(name)
            s.add(chunks=1, delivered=3)
            self.on_progress(s)
        skus = StreamStats("skus")
        skus.add(chunks=1, delivered=5)

        def commit() -> None:
            time.sleep(0.3)  # the state transaction
            self.on_progress(skus)

        self._commit = threading.Thread(target=commit)
        self._commit.start()
        raise KeyboardInterrupt

    def close(self) -> None:
        if self._commit is not None:
            self._commit.join()


def test_an_interrupted_runs_message_counts_the_commit_in_flight(tmp_path):
    state = StateStore(StateSettings(url=f"sqlite:///{tmp_path}/state.db"))
    runtime = SimpleNamespace(config=None, state=state, warnings=[])
    syncer = _InFlight()
    with pytest.raises(KeyboardInterrupt):
        publish(runtime, LocalHost("run-ctrl-c"), kind="nightly", title="sync", dry_run=False,  # type: ignore[arg-type]
                body=syncer.interrupt_while_committing, syncer=syncer, streams=["categories", "products", "skus"])
    run = state.last_runs(1)[0]
    assert run["status"] == "interrupted"
    assert "categories 1 chunk" in run["message"] and "products 1 chunk" in run["message"]
    assert "skus 1 chunk (5 delivered)" in run["message"]


def test_retry_is_recorded_as_a_run(tmp_path, emulator):
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=40)
    cfg = shop_config(tmp_path, url, emulator, TOKEN)
    emulator.faults.update({"reject": {"12": [409, "profile is locked"]}})
    run_all(cfg)
    emulator.faults.update({"reject": {}})
    host = LocalHost("retry-run")
    outcome = guarded(lambda rt: retry_streams(rt, host, ["orders"]), str(cfg), host, need_client=True)
    assert outcome.ok, outcome.message
    assert "12" in emulator.store.orders
    run = StateStore(load_config(cfg).state).last_runs(1)[0]
    assert run["run_id"] == "retry-run" and run["kind"] == "retry" and run["status"] == "completed"
    assert run["streams"]["orders"]["delivered"] >= 1
