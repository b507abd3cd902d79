"""A stranger's answer never enters the ledger: redirects are not followed, a page that is not Altcraft's
JSON envelope is retried (never delivered, never rejected), and a long Retry-After ends the run saying so."""

from __future__ import annotations

import time

import pytest

from altcraft_sync.config import load_config
from altcraft_sync.errors import AltcraftUnavailable
from connectors.state import StateStore
from tests.helpers import STREAMS, mapped_source, run_all
from tests.hostile.conftest import Hostile
from tests.hostile.proxy import fixed

HTML = "<html><head><title>400 Bad Request</title></head><body><center>nginx</center></body></html>"


def converged(h: Hostile) -> None:
    """Altcraft holds exactly what the source holds, and the ledger has no rejection."""
    expected = mapped_source(h.config)
    store = h.emulator.store
    assert store.orders == expected["orders"] and store.products == expected["products"]
    assert store.skus == expected["skus"] and set(store.categories) == set(expected["categories"])
    summary = StateStore(load_config(h.config).state).rejected_rows()
    assert summary == [], summary


@pytest.mark.parametrize("status", [307, 302])
def test_a_redirect_to_another_host_is_not_followed(hostile: Hostile, status: int):
    away = hostile.foreign.base + "/api/v1.1/market/products/import"
    hostile.proxy.inject("market/products/import", fixed(status, "", Location=away), times=-1)
    with pytest.raises(AltcraftUnavailable, match=rf"HTTP {status} redirect to {away}"):
        run_all(hostile.config)
    assert hostile.foreign.recorder.requests == []  # no body, no token, no customer went there
    assert hostile.emulator.store.products == {}
    hostile.proxy.rules.clear()
    stats = run_all(hostile.config, run_id="clean")
    assert sum(s.rejected for s in stats.values()) == 0
    converged(hostile)


@pytest.mark.parametrize("page", ["html 400", "empty 200", "{} 200", "envelope without results", "html 200"])
def test_an_answer_that_is_not_altcrafts_is_retried_never_a_ledger_fact(hostile: Hostile, page: str):
    answer = {
        "html 400": fixed(400, HTML, **{"Content-Type": "text/html"}),
        "empty 200": fixed(200, ""),
        "{} 200": fixed(200, "{}", **{"Content-Type": "application/json"}),
        "envelope without results": fixed(200, '{"error": 0, "error_text": ""}'),
        "html 200": fixed(200, HTML, **{"Content-Type": "text/html"}),
    }[page]
    for method in ("market/products/import", "market/orders/import"):
        hostile.proxy.inject(method, answer, times=1)  # once: the retry reaches Altcraft
    stats = run_all(hostile.config)
    assert all(r.used == 1 for r in hostile.proxy.rules)
    assert sum(s.rejected + s.failed for s in stats.values()) == 0
    converged(hostile)


def test_the_same_page_every_time_fails_the_run_and_the_next_run_delivers_everything(hostile: Hostile):
    hostile.proxy.inject("market/products/import", fixed(400, HTML, **{"Content-Type": "text/html"}), times=-1)
    with pytest.raises(AltcraftUnavailable, match="text/html body that is not JSON"):
        run_all(hostile.config)
    state = StateStore(load_config(hostile.config).state)
    assert state.rejected_rows() == []  # nothing was believed rejected
    hostile.proxy.rules.clear()
    run_all(hostile.config, run_id="next")
    converged(hostile)


def test_retry_after_past_the_setting_ends_the_run_saying_how_long(hostile: Hostile):
    hostile.proxy.inject("market/orders/import", fixed(429, "", **{"Retry-After": "86400"}), times=-1)
    started = time.monotonic()
    with pytest.raises(AltcraftUnavailable, match=r"asked to wait 86400 s \(1 day, 0:00:00, Retry-After\).*"
                                                  r"max_retry_after_seconds \(3600 s\)"):
        run_all(hostile.config)
    assert time.monotonic() - started < 60
    hostile.proxy.rules.clear()
    run_all(hostile.config, streams=STREAMS, run_id="later")
    converged(hostile)


def test_a_retry_after_within_the_setting_is_waited_in_full(hostile: Hostile):
    hostile.edit_config(backoff_max=0.01)
    hostile.proxy.inject("market/orders/import", fixed(429, "", **{"Retry-After": "1.5"}), times=1)
    started = time.monotonic()
    run_all(hostile.config)
    assert time.monotonic() - started >= 1.5  # not cut to backoff_max
    converged(hostile)


def test_a_proxys_413_isolates_the_record_but_never_rejects_it(hostile: Hostile):
    """A web server's body limit in front of Altcraft answers 413 with its own HTML page. Its size signal is
    acted on (the batch is halved until the record it refuses is alone) but it is not Altcraft's verdict:
    that record is failed, not rejected, and the next run delivers it once the limit allows."""
    import json

    big = sorted(mapped_source(hostile.config)["orders"], key=int)[10]
    page = "<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>"

    def limit(body: bytes, upstream):
        if any(str(r.get("external_id")) == big for r in json.loads(body).get("data", [])):
            return 413, {"Content-Type": "text/html"}, page.encode()
        return upstream()

    hostile.proxy.inject("market/orders/import", limit, times=-1)
    stats = run_all(hostile.config)
    assert stats["orders"].failed == 1 and stats["orders"].rejected == 0
    assert big not in hostile.emulator.store.orders and len(hostile.emulator.store.orders) > 1
    state = StateStore(load_config(hostile.config).state)
    held = state.rejected_rows()
    assert [(r["external_id"], r["status"]) for r in held] == [(big, "failed")]  # a stranger's 413: never a rejection
    assert "not in Altcraft's own answer" in held[0]["error_text"], held
    hostile.proxy.rules.clear()
    run_all(hostile.config, run_id="next")
    assert big in hostile.emulator.store.orders
    converged(hostile)
