"""The Altcraft client against the emulator, over real HTTP: endpoints, paging, per-item outcomes,
fault tolerance, batch isolation, fail-fast auth and secret hygiene."""

from __future__ import annotations

import logging

import pytest

from altcraft_sync import streams as registry
from altcraft_sync.config import AltcraftSettings
from altcraft_sync.errors import AltcraftAuthError, AltcraftError, AltcraftTariffError, AltcraftUnavailable
from connectors.altcraft import Encoded
from tests.conftest import TOKEN

ORDERS, PRODUCTS, SKUS = registry.get("orders"), registry.get("products"), registry.get("skus")
"""The client takes a stream's method names from its spec (it has no per-stream methods)."""


def order(ext: str, product: str = "sku-1", **over) -> dict:
    rec = {
        "external_id": ext, "matching": "email", "email": f"{ext}@example.com", "endpoint": "website",
        "status": "new", "total_price": "19.99", "currency": "RUB", "create_time": "2026-01-02T15:04:05.141Z",
        "lines": [{"external_id": f"{ext}-l1", "status": "new", "product": product,
                   "final_price_per_item": "19.99", "count": 1}],
    }
    rec.update(over)
    return rec


def seed_catalog(client) -> None:
    report = client.import_categories([Encoded.of({"external_id": "cat-1", "name": "Phones"})],
                                      carrier=Encoded.of({"external_id": "prod-1", "name": "Phone", "categories": ["cat-1"]}))
    assert report.carrier is not None and report.carrier.status == "delivered"
    client.import_records(SKUS.import_method, [Encoded.of({"external_id": "sku-1", "name": "Phone 128",
                                                           "product_external_id": "prod-1", "price": "19.99"})])


def enc(records):
    return [Encoded.of(r) for r in records]


def test_every_endpoint(emulator, make_client):
    c = make_client()
    seed_catalog(c)
    assert emulator.store.categories["cat-1"]["name"] == "Phones"
    assert emulator.store.skus["sku-1"]["price"] == "19.99"
    defs = [{"external_id": "gift", "name": "Gift", "entity_type": "order", "required": False,
             "value_type": "bool", "default_value": False}]
    statuses = [{"external_id": "pickup", "name": "At pick-up point", "type": "in_process"}]
    rec = order("o-1", custom_fields={"gift": True})
    rec["lines"][0]["status"] = "pickup"
    # the definitions travel with the first order that uses them (data is never empty)
    carried = c.import_with_roots("market/orders/import", Encoded.of(rec),
                                  {"custom_fields": defs, "custom_line_statuses": statuses, "skip_triggers": True})
    assert carried.status == "delivered"
    assert set(emulator.store.custom_fields) == {"gift"} and set(emulator.store.custom_line_statuses) == {"pickup"}
    report = c.import_records(ORDERS.import_method, enc([rec]), root={"skip_triggers": True})
    assert report.outcomes["o-1"].status == "delivered"
    assert emulator.store.orders["o-1"] == rec
    assert c.get_order_status("o-1") == {"endpoint": "website", "status": "new"}
    assert [o["external_id"] for o in c.list_records(ORDERS.list_method)] == ["o-1"]
    assert [p["external_id"] for p in c.list_records(PRODUCTS.list_method)] == ["prod-1"]
    assert [s["external_id"] for s in c.list_records(SKUS.list_method)] == ["sku-1"]
    # products/import with nested SKUs
    c.import_records(PRODUCTS.import_method, enc([{"external_id": "prod-2", "name": "Case", "sku": [
        {"external_id": "sku-2", "name": "Case red", "product_external_id": "prod-2"}]}]))
    assert emulator.store.skus["sku-2"]["product_external_id"] == "prod-2"
    assert c.delete_records(ORDERS.delete_method, ["o-1"], one_by_one=True).outcomes["o-1"].status == "delivered"
    assert "o-1" not in emulator.store.orders
    c.delete_records(SKUS.delete_method, ["sku-2"])
    assert "sku-2" not in emulator.store.skus
    c.delete_records(PRODUCTS.delete_method, ["prod-2"])
    assert "prod-2" not in emulator.store.products


def test_list_follows_next_from_id_across_pages(emulator, make_client):
    c = make_client()
    seed_catalog(c)
    c.import_records(ORDERS.import_method, enc([order(f"o-{i}") for i in range(1205)]))
    listed = [o["external_id"] for o in c.list_records(ORDERS.list_method, limit=500)]
    assert len(listed) == 1205 and len(set(listed)) == 1205
    assert emulator.stats["method:market/orders/list"] == 4  # three full/partial pages + the empty one


def test_list_pages_go_in_creation_order_past_deleted_and_reimported_records(emulator, make_client):
    """The emulator pages from an id index (``Store.after``), not by sorting every record: the pages still
    hold each stored record once, in the order Altcraft first created them, deleted ones left out."""
    c = make_client()
    seed_catalog(c)
    c.import_records(ORDERS.import_method, enc([order(f"o-{i}") for i in range(30)]))
    c.delete_records(ORDERS.delete_method, [f"o-{i}" for i in range(0, 30, 3)], one_by_one=True)
    c.import_records(ORDERS.import_method, enc([order("o-3"), order("o-new")]))  # o-3 keeps its first id
    listed = [o["external_id"] for o in c.list_records(ORDERS.list_method, limit=4)]
    expected = [f"o-{i}" for i in range(30) if i % 3 or i == 3] + ["o-new"]
    assert listed == expected
    first = emulator.handle("market/orders/list", {"limit": 1, "from_id": 0}, emulator.token)
    assert [o["external_id"] for o in first["result"]] == ["o-1"]


def test_per_item_rejections_mixed_with_deliveries(emulator, make_client):
    c = make_client()
    seed_catalog(c)
    records = [order("ok-1"), order("bad-status", status="shipped"), order("ok-2"),
               order("bad-currency", currency="XXX"), order("bad-product", product="no-such-sku")]
    report = c.import_records(ORDERS.import_method, enc(records))
    got = {k: (o.status, o.code, o.permanent) for k, o in report.outcomes.items()}
    assert got["ok-1"] == ("delivered", 0, False) and got["ok-2"] == ("delivered", 0, False)
    assert got["bad-status"] == ("rejected", 400, True)
    assert got["bad-currency"] == ("rejected", 400, True)
    assert got["bad-product"] == ("rejected", 404, False)  # clears once the product exists: retryable
    assert "not enabled" in report.outcomes["bad-currency"].text
    assert set(emulator.store.orders) == {"ok-1", "ok-2"}
    assert report.requests == 1


def test_429_storm_and_random_5xx_lose_nothing(emulator, make_client):
    c = make_client(max_attempts=30, batch_size=20)
    seed_catalog(c)
    emulator.faults.update({"rate_limit_every": 3, "retry_after": 0.01, "error_rate": 0.25, "drop_rate": 0.1,
                            "seed": 7})
    records = [order(f"o-{i}") for i in range(400)]
    report = c.import_records(ORDERS.import_method, enc(records))
    assert report.count("delivered") == 400 and report.count("rejected") == report.count("failed") == 0
    assert set(emulator.store.orders) == {r["external_id"] for r in records}
    assert c.retries > 0
    assert emulator.stats["api_requests"] > report.requests  # faults really happened


def test_retry_after_is_honoured_and_retries_are_capped(emulator, make_client):
    slept: list[float] = []
    c = make_client(max_attempts=4, backoff_initial=0.001, backoff_max=5)
    c._sleep = slept.append
    emulator.faults.update({"rate_limit_every": 1, "retry_after": 2.5})
    with pytest.raises(AltcraftUnavailable, match=r"market/orders/import kept failing after 4 attempts.*HTTP 429"):
        c.import_records(ORDERS.import_method, enc([order("o-1")]))
    assert len(slept) == 3 and all(s >= 2.5 for s in slept)


def test_body_over_limit_gets_413_and_is_split(emulator, make_client):
    c = make_client(max_body_bytes=64_000_000, batch_size=10_000)  # let the client overshoot on purpose
    seed_catalog(c)
    filler = "x" * 990
    records = [order(f"o-{i}", tags=[filler] * 20) for i in range(600)]  # ~12 MB in one body
    report = c.import_records(ORDERS.import_method, enc(records))
    assert report.count("delivered") == 600
    assert report.requests > 1
    # one record that alone exceeds 10 MB is reported rejected, the others still go through
    huge = order("huge", tags=[filler] * 11_000)
    report = c.import_records(ORDERS.import_method, enc([order("small-1"), huge, order("small-2")]))
    assert report.outcomes["huge"].status == "rejected" and report.outcomes["huge"].code == 413
    assert {"small-1", "small-2"} <= set(emulator.store.orders)


def test_client_keeps_bodies_under_its_size_cap(emulator, make_client):
    c = make_client(max_body_bytes=50_000)
    seed_catalog(c)
    report = c.import_records(ORDERS.import_method, enc([order(f"o-{i}", tags=["y" * 900]) for i in range(200)]))
    assert report.count("delivered") == 200 and report.requests >= 4
    assert emulator.stats.get("method:market/orders/import", 0) == report.requests


def test_bad_record_isolated_by_halving(emulator, make_client):
    c = make_client()
    seed_catalog(c)
    records = [order(f"o-{i}") for i in range(64)]
    records[37]["lines"][0]["count"] = "5"  # wrong JSON type: the whole request is refused with 400
    report = c.import_records(ORDERS.import_method, enc(records))
    bad = report.outcomes["o-37"]
    assert (bad.status, bad.code, bad.permanent) == ("rejected", 400, True)
    assert "count" in bad.text
    assert report.count("delivered") == 63
    assert set(emulator.store.orders) == {f"o-{i}" for i in range(64)} - {"o-37"}


def test_bad_category_isolated(emulator, make_client):
    c = make_client()
    cats = [{"external_id": f"c{i}", "name": f"C{i}"} for i in range(10)]
    cats[4] = {"external_id": "c4", "name": ""}
    report = c.import_categories(enc(cats), carrier=Encoded.of({"external_id": "p", "name": "Carrier"}))
    assert report.outcomes["c4"].status == "rejected"
    assert set(emulator.store.categories) == {f"c{i}" for i in range(10)} - {"c4"}
    assert report.carrier is not None and report.carrier.status == "delivered"
    assert emulator.stats["empty_data_requests"] == 0


def test_an_orphan_category_is_refused_unless_the_emulator_is_told_to_take_it(emulator):
    """Whether Altcraft takes a category whose parent it does not hold is inferred, so it is a flag: refused
    by default (the reading altcraft-sync is built against), taken with ``accept_orphan_categories``."""
    body = {"token": TOKEN, "categories": [{"external_id": "child", "name": "C", "parent_external_id": "p"}],
            "data": [{"external_id": "carrier", "name": "Carrier"}]}
    answer = emulator.handle("market/products/import", body, None)
    assert answer["error"] == 400 and "parent 'p' does not exist" in answer["error_text"]
    emulator.accept_orphan_categories = True
    assert emulator.handle("market/products/import", body, None)["error"] == 0
    assert emulator.store.categories["child"]["parent_external_id"] == "p"


def test_strict_emulator_refuses_empty_data(emulator):
    body = {"token": TOKEN, "categories": [{"external_id": "c", "name": "C"}], "data": []}
    assert emulator.handle("market/products/import", body, None)["error"] == 400
    assert emulator.stats["empty_data_requests"] == 1 and "c" not in emulator.store.categories


def test_definitions_refused_fail_with_one_line_naming_them(emulator, make_client):
    c = make_client()
    bad = [{"external_id": "gift", "name": "Gift", "entity_type": "order", "value_type": "no-such-type",
            "default_value": False}]
    with pytest.raises(AltcraftError, match=r"refused the definitions \(custom_fields \['gift'\]\)") as err:
        c.import_with_roots("market/orders/import", Encoded.of(order("o-1")), {"custom_fields": bad})
    assert "\n" not in str(err.value) and TOKEN not in str(err.value)


@pytest.mark.parametrize("path", ["/", "/api/"])
def test_api_url_without_its_path_gets_a_hint(emulator, make_client, path):
    base = emulator.url.split("/api/")[0] + path
    c = make_client(api_url=base)
    with pytest.raises(AltcraftError, match="api_url") as err:
        c.import_records(ORDERS.import_method, enc([order("o-1")]))
    text = str(err.value)
    assert f"{base}market/orders/import" in text and "/api/v1.1/" in text
    assert c.retries == 0


def test_bad_token_fails_fast_without_retries(emulator, make_client):
    c = make_client(token="wrong-token")
    with pytest.raises(AltcraftAuthError, match="refused the API token") as err:
        c.import_records(ORDERS.import_method, enc([order("o-1")]))
    assert c.requests_sent == 1 and c.retries == 0
    assert "\n" not in str(err.value)


def test_tariff_limit_fails_fast(emulator, make_client):
    c = make_client()
    emulator.faults.update({"tariff_exceeded": True})
    with pytest.raises(AltcraftTariffError, match="tariff limit"):
        c.import_records(SKUS.import_method, enc([{"external_id": "s", "name": "s", "product_external_id": "p"}]))
    assert c.requests_sent == 1


def test_bearer_auth(emulator, make_client):
    c = make_client(auth="bearer")
    seed_catalog(c)
    assert "sku-1" in emulator.store.skus
    assert TOKEN.encode() not in c._prefix({})  # the token goes only in the header


def test_concurrency_is_bounded(emulator, make_client):
    c = make_client(concurrency=3, batch_size=5)
    seed_catalog(c)
    emulator.faults.update({"latency_ms": 30})
    c.import_records(ORDERS.import_method, enc([order(f"o-{i}") for i in range(60)]))
    assert 2 <= emulator.stats["max_in_flight"] <= 3


def test_groups_with_their_own_root_options_are_in_flight_together(emulator, make_client):
    """Old orders go with ``skip_triggers: true``, recent ones without, in requests of their own: the two
    groups' requests overlap (a chunk holding both is one round of requests, not two), each keeping its flag."""
    c = make_client(concurrency=4, batch_size=5)
    seed_catalog(c)
    emulator.faults.update({"latency_ms": 200})
    history, fresh = enc([order(f"old-{i}") for i in range(5)]), enc([order("new-1")])
    report = c.import_groups(ORDERS.import_method, [(history, {"skip_triggers": True}), (fresh, {})])
    assert report.requests == 2 and {o.status for o in report.outcomes.values()} == {"delivered"}
    assert emulator.stats["max_in_flight"] == 2
    assert emulator.skip_triggers == {**{f"old-{i}": True for i in range(5)}, "new-1": False}


def test_rate_limiter_spaces_requests(emulator, make_client):
    import time

    from connectors.altcraft import RateLimiter

    limiter = RateLimiter(20)
    limiter._tokens = 0  # start with an empty bucket
    start = time.monotonic()
    for _ in range(10):
        limiter.acquire()
    assert time.monotonic() - start >= 0.45


def test_plain_http_refused_for_remote_hosts():
    from altcraft_sync.config import parse_config
    from altcraft_sync.errors import ConfigError

    with pytest.raises(Exception, match="plain http"):
        AltcraftSettings(api_url="http://altcraft.example.com/api/v1.1/")
    assert AltcraftSettings(api_url="http://altcraft.example.com/api/v1.1/", allow_insecure_http=True)
    assert AltcraftSettings(api_url="https://altcraft.example.com/api/v1.1/")
    with pytest.raises(ConfigError, match=r"altcraft: .*plain http"):
        parse_config({"altcraft": {"api_url": "http://10.1.2.3/api/v1.1/"}, "streams": {}})


def test_token_never_in_logs_reprs_or_errors(emulator, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    c = make_client(max_attempts=10)
    seed_catalog(c)
    emulator.faults.update({"error_rate": 0.5, "seed": 1})
    c.import_records(ORDERS.import_method, enc([order(f"o-{i}") for i in range(30)]))
    emulator.faults.update({"error_rate": 1.0})
    with pytest.raises(AltcraftUnavailable) as err:
        c.import_records(ORDERS.import_method, enc([order("o-x")]))
    settings_repr = repr(c.settings)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(c) and TOKEN not in settings_repr and TOKEN not in str(err.value)
    emulator.faults.update({"error_rate": 0.0})
    bad = make_client(token="wrong-" + TOKEN)
    with pytest.raises(AltcraftAuthError) as auth_err:
        bad.import_records(ORDERS.import_method, enc([order("o-y")]))
    assert TOKEN not in str(auth_err.value) and TOKEN not in caplog.text
    assert "retrying" in caplog.text  # the logs were really captured


class _Recorder:
    """A forward proxy that records the request line it is sent and answers 503 (nothing is forwarded)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.lines: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head and (part := conn.recv(65536)):
                    head += part
                self.lines.append(head.split(b"\r\n", 1)[0].decode())
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


def test_the_proxy_the_environment_names_carries_every_request(emulator, make_client, monkeypatch):
    """``HTTP_PROXY``/``HTTPS_PROXY`` and ``NO_PROXY`` are honoured as requests reads them, though the client
    reads them once, when it is made, not on every request."""
    proxy = _Recorder()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        c = make_client(max_attempts=2, max_retry_seconds=5)
        with pytest.raises(AltcraftUnavailable, match="HTTP 503"):
            c.import_records(SKUS.import_method, enc([{"external_id": "s", "name": "s", "product_external_id": "p"}]))
        assert proxy.lines == [f"POST {emulator.url}{SKUS.import_method} HTTP/1.1"] * 2

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        seed_catalog(make_client())  # the host NO_PROXY names goes straight to Altcraft
        assert "sku-1" in emulator.store.skus and len(proxy.lines) == 2
    finally:
        proxy.close()


def test_a_ca_bundle_from_the_environment_is_what_tls_is_verified_against(emulator, make_client, monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert make_client()._session.verify == str(bundle)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert make_client()._session.verify is True


def test_a_netrc_entry_for_the_host_never_replaces_the_bearer_token(emulator, make_client, monkeypatch, tmp_path):
    """requests, left to read the environment on each request, takes a ``.netrc`` password for the host as
    Basic auth, which overwrites ``Authorization: Bearer``: Altcraft would refuse the token."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-token\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    c = make_client(auth="bearer")
    seed_catalog(c)
    assert "sku-1" in emulator.store.skus
