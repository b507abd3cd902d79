"""The shop database source on SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB run when SHOP_TEST_PG_URL / SHOP_TEST_MYSQL_URL point at servers (``.ci/run``
starts both; locally: ``eval "$(bash .ci/services.sh)"``); otherwise those cases skip and say why.
"""

from __future__ import annotations

import os
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from altcraft_sync.config import load_config, parse_config
from altcraft_sync.errors import ConfigError, SourceError
from connectors.shop_db import Cursor, ShopSource
from connectors.state import StateStore
from sandbox import demo_shop
from tests import second_schema as S2
from tests.conftest import TOKEN
from tests.helpers import build_shop, db_now, just_before, run_all, shop_config, shop_url_for


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def shop_url(request, tmp_path):
    return shop_url_for(request.param, tmp_path)


def _source(cfg_dict):
    src = ShopSource(parse_config(cfg_dict))
    src.bind()
    src.check_values()
    return src


def test_demo_shop_full_then_incremental(shop_url, tmp_path, emulator):
    engine = build_shop(shop_url, orders=120)
    cfg = shop_config(tmp_path, shop_url, emulator, TOKEN)
    first = run_all(cfg)
    assert first["orders"].delivered == len(emulator.store.orders) == 120 - first["orders"].invalid
    assert first["orders"].failed == first["orders"].rejected == 0
    order = emulator.store.orders["10"]
    assert order["create_time"].endswith("Z") and order["lines"] and isinstance(order["lines"][0]["count"], int)
    # a line-only change surfaces its order; nothing else is sent
    with engine.connect() as conn:
        line_id = conn.execute(
            sa.select(demo_shop.order_lines.c.id).where(demo_shop.order_lines.c.order_id == 30).limit(1)
        ).scalar()
    demo_shop.touch(engine, order_ids=[], line_id=line_id, at=just_before(engine))
    before = dict(emulator.import_counts)
    second = run_all(cfg, run_id="second")
    changed = {k for k, v in emulator.import_counts.items() if v != before.get(k, 0)}
    assert changed == {("order", "30")} and second["orders"].delivered == 1


def test_second_schema_synced_purely_through_config(shop_url, tmp_path, emulator):
    engine = sa.create_engine(shop_url)
    S2.create(engine)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    S2.fill(engine, 40, base)
    cfg = parse_config(S2.config(shop_url, f"sqlite:///{tmp_path}/state.db", emulator.url, TOKEN))
    stats = run_all(cfg, streams=["products", "skus", "orders"])
    assert stats["orders"].delivered == 40 and stats["orders"].invalid == 0
    assert len(emulator.store.skus) == 12 and len(emulator.store.products) == 4
    got = emulator.store.orders["Z-000007"]
    assert got == {
        "matching": "email", "email": "buyer7@example.org", "external_id": "Z-000007", "status": "paid",
        "total_price": "41.97", "currency": "RUB", "endpoint": "shop",
        "lines": [
            {"external_id": "13", "product": "V7", "final_price_per_item": "17.99", "count": 1, "status": "new"},
            {"external_id": "14", "product": "V1", "final_price_per_item": "11.99", "count": 2, "status": "new"},
        ],
    }
    assert emulator.store.skus["V3"]["price"] == "13.99"
    # second run: nothing new
    again = run_all(cfg, streams=["products", "skus", "orders"], run_id="again")
    assert sum(s.delivered for s in again.values()) == 0


def test_equal_timestamps_across_chunk_boundaries_read_exactly_once(shop_url):
    engine = sa.create_engine(shop_url)
    S2.create(engine)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    S2.fill(engine, 95, base, tie_every=40)  # runs of 40 orders share one timestamp
    cfg = S2.config(shop_url, "sqlite://", "http://127.0.0.1:1/api/v1.1/", "x", chunk_size=7)
    src = _source(cfg)
    upper = src.upper_bound("orders", 0)
    seen = []
    cursors = []
    for frame, cur in src.read_changes("orders", None, upper, 7):
        seen += frame["_pk"].tolist()
        cursors.append(cur)
    assert sorted(seen) == [f"Z-{i:06d}" for i in range(1, 96)] and len(seen) == len(set(seen))
    # resume from a cursor in the middle of a tie: the rest of the tie and later, each once
    mid = cursors[3]
    rest = [pk for frame, _ in src.read_changes("orders", mid, upper, 7) for pk in frame["_pk"].tolist()]
    assert rest == seen[seen.index(mid.pk) + 1:]
    # what a progress bar's total counts: the same rows, from the start or from a cursor inside a tie
    assert src.count_between("orders", None, upper) == 95 and src.count_between("orders", mid, upper) == len(rest)
    # the cursor survives a round trip through the state store's JSON unchanged
    assert Cursor.from_json(mid.to_json()) == mid


@pytest.mark.parametrize("timed, by_key", [(True, False), (True, True), (False, False)],
                         ids=["keyset", "first-sync-by-key", "by-key-alone"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_a_null_key_at_a_page_boundary_skips_no_row_after_it(shop_url, chunk, timed, by_key):
    """A user query can return NULL keys. The keyset cannot resume after a NULL (NULLs sort first on SQLite
    and MySQL, last on PostgreSQL), so a page that ends on one must not let the next page skip the rest of
    its timestamp: every keyed row is read exactly once, and every NULL-key row once (it is quarantined)."""
    engine = sa.create_engine(shop_url)
    S2.create(engine)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    S2.fill(engine, 30, base, tie_every=10)  # runs of 10 orders share one timestamp
    nulled = ("Z-000003", "Z-000012", "Z-000013", "Z-000029")
    cfg = S2.config(shop_url, "sqlite://", "http://127.0.0.1:1/api/v1.1/", "x", chunk_size=chunk)
    spec = cfg["streams"]["orders"]
    spec.pop("table")
    if not timed:  # a stream without updated_at is read in full, by key alone
        spec.pop("updated_at")
    spec["query"] = ("SELECT CASE WHEN nomer IN ('" + "', '".join(nulled) + "') THEN NULL ELSE nomer END AS nomer, "
                     "sostoyanie, summa, pochta, izmeneno FROM zakazy")
    src = _source(cfg)
    upper = src.upper_bound("orders", 0)
    keyed, nulls = [], 0
    for frame, _ in src.read_changes("orders", None, upper, chunk, by_key=by_key):
        keys = frame["_pk"].tolist()
        keyed += [k for k in keys if k is not None]
        nulls += sum(k is None for k in keys)
    expected = sorted(f"Z-{i:06d}" for i in range(1, 31) if f"Z-{i:06d}" not in nulled)
    assert sorted(keyed) == expected and len(keyed) == len(set(keyed))
    assert nulls == len(nulled)


@pytest.mark.parametrize("chunk", [1, 4, 7])
def test_a_first_sync_read_in_key_order_gives_every_row_up_to_the_bound_once(shop_url, chunk):
    """A first sync reads in key order (``source.first_sync_order: key``): here key order is not time
    order, ties span pages, and one row was written after the bound. Every other row comes once, in key
    order, and the watermark the planner then writes is the newest row read."""
    engine = sa.create_engine(shop_url)
    S2.create(engine)
    now = db_now(engine).replace(tzinfo=UTC)
    S2.fill(engine, 20, now - timedelta(hours=2), tie_every=3)
    with engine.begin() as conn:
        for nomer, moment in (("Z-000002", now - timedelta(minutes=30)), ("Z-000017", now - timedelta(hours=3)),
                              ("Z-000009", now - timedelta(minutes=5)), ("Z-000011", now)):
            conn.execute(S2.zakazy.update().where(S2.zakazy.c.nomer == nomer).values(izmeneno=S2.ts_value(engine, moment)))
    src = _source(S2.config(shop_url, "sqlite://", "http://127.0.0.1:1/api/v1.1/", "x"))
    upper = src.upper_bound("orders", 60)
    by_key = [pk for frame, _ in src.read_changes("orders", None, upper, chunk, by_key=True)
              for pk in frame["_pk"].tolist()]
    expected = [f"Z-{i:06d}" for i in range(1, 21) if i != 11]
    assert by_key == expected  # key order, each once; the write after the bound waits for the next run
    by_cursor = [pk for frame, _ in src.read_changes("orders", None, upper, chunk) for pk in frame["_pk"].tolist()]
    assert sorted(by_cursor) == expected and by_cursor[0] == "Z-000017" and by_cursor[-1] == "Z-000009"
    assert src.last_cursor("orders", upper).pk == "Z-000009"


def test_upper_bound_holds_back_rows_newer_than_the_margin(shop_url):
    engine = sa.create_engine(shop_url)
    S2.create(engine)
    now = db_now(engine).replace(tzinfo=UTC)
    S2.fill(engine, 3, now - timedelta(hours=1))
    with engine.begin() as conn:
        conn.execute(S2.zakazy.update().where(S2.zakazy.c.nomer == "Z-000002").values(izmeneno=S2.ts_value(engine, now)))
    src = _source(S2.config(shop_url, "sqlite://", "http://127.0.0.1:1/api/v1.1/", "x"))
    upper = src.upper_bound("orders", 60)
    read = [pk for frame, _ in src.read_changes("orders", None, upper, 100) for pk in frame["_pk"].tolist()]
    assert read == ["Z-000001", "Z-000003"]  # the fresh write waits for the next run


@pytest.mark.parametrize(
    "mutate, setting",
    [
        (
            lambda c: c["streams"]["orders"].update(table="zakazy_typo"),
            "streams.orders.table: table 'zakazy_typo' does not exist",
        ),
        (
            lambda c: c["streams"]["orders"]["columns"].update(total_price="sum"),
            "streams.orders.columns.total_price: column 'sum' is not in table 'zakazy'",
        ),
        (lambda c: c["streams"]["orders"]["lines"].update(parent_key="zakaz"), "streams.orders.lines.parent_key: column 'zakaz'"),
        (lambda c: c["streams"]["orders"]["status_map"].pop("otmenen"), "streams.orders.status_map: shop value 'otmenen'"),
        (
            lambda c: c["streams"]["orders"].update(table=None, query="SELEC nomer FROM zakazy"),
            "streams.orders.query: the SELECT fails",
        ),
    ],
)
def test_config_errors_against_the_live_database_name_the_setting(shop_url, mutate, setting):
    engine = sa.create_engine(shop_url)
    S2.create(engine)
    S2.fill(engine, 5, datetime.now(UTC) - timedelta(hours=1))
    cfg = S2.config(shop_url, "sqlite://", "http://127.0.0.1:1/api/v1.1/", "x")
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        _source(cfg)
    assert setting in str(err.value) and "\n" not in str(err.value)


def test_unreachable_database_is_one_line_without_password():
    cfg = S2.config("postgresql://shop:s3cret-pass@127.0.0.1:1/shop", "sqlite://", "http://127.0.0.1:1/api/v1.1/", "x")
    with pytest.raises(SourceError) as err:
        _source(cfg)
    text = str(err.value)
    assert "unreachable" in text and "s3cret-pass" not in text and "***" in text and "\n" not in text


def test_user_select_as_source(tmp_path):
    url = f"sqlite:///{tmp_path}/q.db"
    engine = sa.create_engine(url)
    S2.create(engine)
    S2.fill(engine, 10, datetime.now(UTC) - timedelta(hours=1))
    cfg = S2.config(url, "sqlite://", "http://127.0.0.1:1/api/v1.1/", "x")
    cfg["streams"]["orders"].update(table=None, query="SELECT z.*, 'x' AS extra FROM zakazy z WHERE z.sostoyanie <> 'otmenen'")
    src = _source(cfg)
    rows = [pk for f, _ in src.read_changes("orders", None, src.upper_bound("orders", 0), 4) for pk in f["_pk"].tolist()]
    assert rows == [f"Z-{i:06d}" for i in range(1, 11) if i % 3 != 2]


def test_memory_stays_flat_reading_200k_orders_in_chunks(tmp_path):
    url = f"sqlite:///{tmp_path}/big.db"
    engine = sa.create_engine(url)
    S2.create(engine)
    base = datetime.now(UTC) - timedelta(days=30)
    with engine.begin() as conn:  # 200k orders in one statement (a recursive CTE), no lines needed here
        conn.execute(
            sa.text(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
                "INSERT INTO zakazy (nomer, sostoyanie, summa, pochta, izmeneno) "
                "SELECT printf('Z-%06d', i), 'novyj', 10.5, 'b' || i || '@example.org', "
                "strftime('%Y-%m-%dT%H:%M:%f', :base, '+' || (i / 3) || ' seconds') FROM n"
            ),
            {"base": base.strftime("%Y-%m-%d %H:%M:%S")},
        )
    src = _source(S2.config(url, "sqlite://", "http://127.0.0.1:1/api/v1.1/", "x"))
    upper = src.upper_bound("orders", 0)

    def peak_reading(limit_rows):
        tracemalloc.start()
        n = 0
        for frame, _ in src.read_changes("orders", None, upper, 5000):
            n += len(frame)
            del frame
            if n >= limit_rows:
                break
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return n, peak

    n_small, small = peak_reading(20_000)
    n_big, big = peak_reading(10**9)
    assert n_small == 20_000 and n_big == 200_000
    assert big < 1.3 * small + 512 * 1024, (small, big)  # flat: 10x the rows, same peak
    assert big < 30 * 1024 * 1024


def test_incremental_runs_check_status_values_only_where_they_read(tmp_path):
    url = f"sqlite:///{tmp_path}/v.db"
    engine = sa.create_engine(url)
    S2.create(engine)
    S2.fill(engine, 10, datetime.now(UTC) - timedelta(days=2))
    with engine.begin() as conn:  # an old row with a value nobody mapped
        conn.execute(S2.zakazy.update().where(S2.zakazy.c.nomer == "Z-000001").values(sostoyanie="arhiv"))
    src = ShopSource(parse_config(S2.config(url, "sqlite://", "http://127.0.0.1:1/api/v1.1/", "x")))
    src.bind()
    with pytest.raises(ConfigError, match="'arhiv'"):
        src.check_values()  # first run / check: every row
    recent = Cursor(src.to_native("orders", datetime.now(UTC) - timedelta(days=1)), None)
    src.check_values({"orders": recent, "orders.lines": recent})  # what an incremental run can read: clean


def test_prices_read_exactly_and_children_fetched_in_one_pass(shop_url, tmp_path, emulator):
    """Prices come as the database's exact decimal (text on PostgreSQL/MySQL, not Decimal objects), and
    children of more parents than one IN list holds are all fetched (PostgreSQL: one ``= ANY(array)``)."""
    from connectors.shop_db import IN_BATCH

    engine = build_shop(shop_url, orders=1000)
    src = ShopSource(load_config(shop_config(tmp_path, shop_url, emulator, TOKEN)))
    src.bind()
    orders = next(src.read_changes("orders", None, src.upper_bound("orders", -3600), 10**6))[0]
    with engine.connect() as conn:
        exact = {r[0]: r[1] for r in conn.execute(sa.select(demo_shop.orders.c.id, demo_shop.orders.c.total))}
    got = dict(zip([int(k) for k in orders["_pk"]], orders["total_price"]))
    if src.dialect != "sqlite":  # SQLite stores NUMERIC as REAL: its exactness is the float path's
        assert all(isinstance(v, str) for v in got.values())
        assert {k: Decimal(v) for k, v in got.items()} == {k: Decimal(v) for k, v in exact.items()}
    keys = orders["_pk"].tolist()
    assert len(keys) > IN_BATCH
    lines = src.fetch_by_keys("orders.lines", keys, by_parent=True)
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(demo_shop.order_lines)).scalar()
    assert len(lines) == total and set(lines["_parent"].tolist()) <= set(keys)
    src.close()


def test_a_map_worker_reads_the_children_on_its_own_connection(shop_url, tmp_path, emulator):
    """Map workers fetch each chunk's lines themselves (``engine.mapping``): on every database the worker's
    own connection returns what the run's connection returns, so the payloads are the same bytes."""
    import os

    from engine.mapping import ChunkMapper
    from runner.runtime import open_runtime
    from transforms.chunk import map_chunk
    from transforms.spec import mapping_spec

    build_shop(shop_url, orders=200)
    cfg = load_config(shop_config(tmp_path, shop_url, emulator, TOKEN, map_workers=1))
    rt = open_runtime(cfg, need_client=False)
    mapper = ChunkMapper(cfg, 1, rt.source)
    try:
        parents = next(rt.source.read_changes("orders", None, rt.source.upper_bound("orders", -3600), 10**6))[0]
        lines = rt.source.fetch_by_keys("orders.lines", parents["_pk"].tolist(), by_parent=True)
        here = map_chunk(parents, lines, mapping_spec(cfg, "orders"))
        mapper.start()
        assert mapper.wait_ready(120)
        there = mapper.submit(mapping_spec(cfg, "orders"), parents, "orders.lines").result(timeout=120)
    finally:
        mapper.shutdown()
        rt.close()
    assert there.pid != os.getpid() and there.read_seconds > 0
    assert len(here.payloads) > 150 and there.mapped.payloads == here.payloads  # bytes, fingerprints, keys
    assert all(b'"lines":[{' in p.data for p in there.mapped.payloads)
    assert there.mapped.quarantine.equals(here.quarantine) and not here.quarantine.empty
    assert there.mapped.deletions == here.deletions and there.mapped.warnings == here.warnings


def test_an_orders_query_with_a_lines_query_and_statuses_only_deleted_rows_carry(shop_url, tmp_path, emulator):
    """Issue 17: both as SELECTs (WooCommerce's lines are a pivot of its item-meta table), and a status
    ('trash') that only soft-deleted orders carry needs no mapping. What check passes, sync runs."""
    import yaml
    from typer.testing import CliRunner

    from cli.main import app

    engine = build_shop(shop_url, orders=60)
    with engine.begin() as conn:
        trashed = conn.execute(sa.select(sa.func.max(demo_shop.orders.c.id))).scalar()
        conn.execute(demo_shop.orders.update().where(demo_shop.orders.c.id == trashed)
                     .values(state="trash", is_deleted=True))
    cfg_path = shop_config(tmp_path, shop_url, emulator, TOKEN)
    raw = yaml.safe_load(cfg_path.read_text())
    lines = raw["streams"]["orders"]["lines"]
    lines.pop("table")
    lines["query"] = ("SELECT l.id, l.order_id, l.sku_code, l.base_price, l.min_price, l.final_price, l.qty, l.state, "
                      "l.gift_message, l.updated_at FROM order_lines l")
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = CliRunner().invoke(app, ["check", "--config", str(cfg_path)])
    assert result.exit_code == 0 and "trash" not in result.output, result.output
    stats = run_all(load_config(cfg_path))
    orders = stats["orders"]
    assert orders.failed == orders.rejected == 0 and str(trashed) not in emulator.store.orders
    assert orders.delivered == len(emulator.store.orders) == 60 - 1 - orders.invalid
    with engine.begin() as conn:  # a line-only change still reaches its order through the lines query
        line_id, _order_id = conn.execute(sa.select(demo_shop.order_lines.c.id, demo_shop.order_lines.c.order_id)
                                         .where(demo_shop.order_lines.c.order_id == 30).limit(1)).one()
    demo_shop.touch(engine, order_ids=[], line_id=line_id, at=just_before(engine))
    again = run_all(load_config(cfg_path), run_id="line-change")
    assert again["orders"].delivered == 1


@pytest.mark.parametrize("first_sync_order", ["key", "cursor"])
def test_a_key_a_join_repeats_is_reported_and_no_row_is_skipped(shop_url, tmp_path, emulator, first_sync_order):
    """The orders query joins a table with two e-mail rows for one customer, so each of that customer's
    orders comes back twice, and the page size puts the first repeat at the end of a page (the keyset
    would skip the second copy there). Those orders are quarantined, naming the key and the count; every
    other order is delivered exactly once."""
    import yaml

    engine = build_shop(shop_url, orders=80)
    emails = sa.Table("customer_emails", sa.MetaData(), sa.Column("customer_id", sa.Integer),
                      sa.Column("email", sa.String(100)))
    emails.drop(engine, checkfirst=True)
    emails.create(engine)
    with engine.begin() as conn:
        rows = conn.execute(sa.select(demo_shop.customers.c.id, demo_shop.customers.c.email)).all()
        conn.execute(emails.insert(), [{"customer_id": i, "email": e} for i, e in rows])
        twice = conn.execute(sa.select(demo_shop.orders.c.customer_id).where(demo_shop.orders.c.id == 40)).scalar()
        conn.execute(emails.insert().values(customer_id=twice, email=f"second{twice}@example.com"))
        order = ([demo_shop.orders.c.id] if first_sync_order == "key"
                 else [demo_shop.orders.c.updated_at, demo_shop.orders.c.id])
        ordered = conn.execute(sa.select(demo_shop.orders.c.id, demo_shop.orders.c.customer_id).order_by(*order)).all()
    repeated = {oid for oid, cust in ordered if cust == twice}
    first_repeat = next(i for i, (oid, _) in enumerate(ordered) if oid in repeated)
    path = shop_config(tmp_path, shop_url, emulator, TOKEN, chunk_size=first_repeat + 1)
    raw = yaml.safe_load(path.read_text())
    raw["source"]["first_sync_order"] = first_sync_order
    raw["streams"]["orders"]["query"] = (
        "SELECT o.id, o.state, o.currency, o.delivery_cost, o.total, o.region_code, o.channel, o.tags, "
        "o.gift_wrap, o.created_at, o.updated_at, o.is_deleted, e.email "
        "FROM orders o JOIN customer_emails e ON e.customer_id = o.customer_id")
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    stats = run_all(path)["orders"]
    state = StateStore(load_config(path).state)
    reasons = {r["external_id"]: r["reasons"] for r in state.quarantine_rows() if r["entity"] == "order"}
    for oid in repeated:
        assert str(oid) not in emulator.store.orders
        assert {"field": "streams.orders.primary_key", "check": "the key is unique in the source",
                "value": f"2 rows with key {oid}"} in reasons[str(oid)]
    sent = {k for (kind, k), n in emulator.import_counts.items() if kind == "order" and n == 1}
    others = {str(oid) for oid, _ in ordered} - {str(o) for o in repeated}
    assert others - set(reasons) <= sent  # every other valid order, exactly once
    assert all(n == 1 for (kind, _), n in emulator.import_counts.items() if kind == "order")
    assert stats.invalid >= len(repeated)



def test_an_unreadable_value_quarantines_its_row_and_every_other_row_and_stream_delivers(tmp_path, emulator):
    """A product name stored as bytes that are not UTF-8: SQLite's driver cannot read the page holding it.
    The page is read again by key, halving until that row is found; it is quarantined with the column
    and a safe preview, and every other product, SKU and order goes out. The run ends completed, its
    figures saying one record was invalid (before, every later stream failed on every run)."""
    from altcraft_sync.config import load_config as load
    from runner.runs import LocalHost, run_streams
    from runner.runtime import open_runtime

    url = f"sqlite:///{tmp_path}/shop.db"
    engine = build_shop(url, orders=60)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE products SET title = CAST(X'436166E9' AS TEXT) WHERE id = 5"))
    cfg = load(shop_config(tmp_path, url, emulator, TOKEN, chunk_size=8))
    rt = open_runtime(cfg, need_client=True)
    try:
        results = run_streams(rt, LocalHost("poison-run"), kind="sync", streams=None, dry_run=False,
                              skip_triggers=False, title="sync")
    finally:
        rt.close()
    state = StateStore(cfg.state)
    reasons = {r["external_id"]: r["reasons"] for r in state.quarantine_rows() if r["entity"] == "product"}
    assert reasons["P0000005"] == [{"field": "streams.products.columns.name", "check": "the value can be read as text",
                                    "value": "not UTF-8: 'Caf\\\\xe9'"}]
    with engine.connect() as conn:
        live = conn.execute(sa.select(sa.func.count()).select_from(demo_shop.products)).scalar()
    assert len(emulator.store.products) == live - 2  # all but the unreadable one and the planted invalid one
    assert results["skus"].delivered > 0 and results["orders"].delivered > 0
    run = state.last_runs(1)[0]
    assert run["status"] == "completed" and run["streams"]["products"]["invalid"] == 2


def test_a_binary_text_column_is_decoded_and_an_undecodable_value_quarantined(shop_url, tmp_path, emulator):
    """Category names in a VARBINARY / bytea / BLOB column: sent decoded by ``source.encoding``, never as
    Python's ``b'...'``; a name that is not UTF-8 quarantines its category with the column and an
    escaped preview, and every other category is delivered."""
    import yaml
    from sqlalchemy.dialects import mysql

    engine = build_shop(shop_url, orders=30)
    binary = sa.LargeBinary().with_variant(mysql.VARBINARY(200), "mysql", "mariadb")
    table = sa.Table("binary_categories", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", binary), sa.Column("parent_id", sa.Integer),
                     sa.Column("updated_at", sa.DateTime))
    table.drop(engine, checkfirst=True)
    table.create(engine)
    with engine.begin() as conn:
        cats = conn.execute(sa.select(demo_shop.categories)).all()
        conn.execute(table.insert(), [
            {"id": c.id, "parent_id": c.parent_id, "updated_at": c.updated_at,
             "name": b"Caf\xe9" if c.id == 2 else f"Café {c.id}".encode()} for c in cats])
    path = shop_config(tmp_path, shop_url, emulator, TOKEN)
    raw = yaml.safe_load(path.read_text())
    raw["streams"]["categories"]["table"] = "binary_categories"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    stats = run_all(path, streams=["categories", "products"])["categories"]
    assert emulator.store.categories["1"]["name"] == "Café 1"
    assert "2" not in emulator.store.categories
    parent = {c.id: c.parent_id for c in cats}

    def under_2(i: int | None) -> bool:  # 2 itself, or a category below it (its parent never arrives)
        while i is not None:
            if i == 2:
                return True
            i = parent.get(i)
        return False

    assert set(emulator.store.categories) == {str(c.id) for c in cats if not under_2(c.id)}
    state = StateStore(load_config(path).state)
    reasons = {r["external_id"]: r["reasons"] for r in state.quarantine_rows() if r["entity"] == "category"}
    assert reasons["2"] == [{"field": "streams.categories.columns.name", "check": "the value decodes as utf-8",
                             "value": "not utf-8: 'Caf\\\\xe9'"}]
    assert stats.invalid == 1


def test_a_stream_without_a_timestamp_is_read_in_full_and_sends_only_changes(shop_url, tmp_path, emulator):
    """Categories mapped without ``updated_at`` (WordPress terms have none): every run reads them all, by
    key; an unchanged run sends nothing, a renamed category (its row's time untouched) is sent again, and
    one deleted from the shop is reported once (Altcraft cannot delete categories) and marked deleted."""
    import yaml

    engine = build_shop(shop_url, orders=30)
    path = shop_config(tmp_path, shop_url, emulator, TOKEN, chunk_size=4)
    raw = yaml.safe_load(path.read_text())
    del raw["streams"]["categories"]["updated_at"]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cats = demo_shop.categories
    leaf = 1000  # a category no product and no other category refers to
    with engine.begin() as conn:
        conn.execute(cats.insert().values(id=leaf, name="Seasonal", parent_id=1, updated_at=datetime(2024, 1, 1)))
        total = conn.execute(sa.select(sa.func.count()).select_from(cats)).scalar()

    first = run_all(path, streams=["categories", "products"])["categories"]
    assert first.delivered == total == len(emulator.store.categories)
    assert first.watermark_after == {"categories": None}  # nothing to keep: the next run reads it all again

    again = run_all(path, streams=["categories"], run_id="unchanged")["categories"]
    assert (again.extracted, again.unchanged, again.delivered, again.requests) == (total, total, 0, 0)

    with engine.begin() as conn:
        conn.execute(cats.update().where(cats.c.id == 2).values(name="Renamed two"))
        conn.execute(cats.delete().where(cats.c.id == leaf))
    third = run_all(path, streams=["categories"], run_id="renamed")["categories"]
    assert third.delivered == 1 and emulator.store.categories["2"]["name"] == "Renamed two"
    assert third.warnings == ["1 categories left the source; Altcraft has no delete method for them"]
    assert third.samples["vanished"] == [str(leaf)]

    fourth = run_all(path, streams=["categories"], run_id="after")["categories"]
    assert (fourth.delivered, fourth.requests, fourth.warnings) == (0, 0, [])


def latin1_shop(values: dict[int, bytes]) -> str:
    """The demo shop on MariaDB with its categories copied into a latin1 table whose names are the given
    bytes (``Cat <id>`` in UTF-8 for the others), stored as they are; the URL."""
    url = os.environ.get("SHOP_TEST_MYSQL_URL")
    if not url:
        pytest.skip("mysql: set SHOP_TEST_MYSQL_URL (bash .ci/services.sh starts a server) to run against it")
    engine = build_shop(url, orders=20)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS latin1_categories"))
        conn.execute(sa.text("CREATE TABLE latin1_categories (id INT PRIMARY KEY, name VARCHAR(100) CHARACTER SET "
                             "latin1, parent_id INT, updated_at DATETIME) DEFAULT CHARSET=latin1"))
        for c in conn.execute(sa.select(demo_shop.categories)).all():
            raw = values.get(c.id, f"Cat {c.id}".encode())
            conn.execute(sa.text("INSERT INTO latin1_categories VALUES (:i, CONVERT(UNHEX(:h) USING latin1), :p, :u)"),
                         {"i": c.id, "h": raw.hex(), "p": c.parent_id, "u": c.updated_at})
    return url


def latin1_names(tmp_path, url: str, emulator, repair: bool) -> dict[str, str]:
    """The category names Altcraft holds after a sync of the latin1 categories, with or without the repair."""
    import yaml

    emulator.reset()
    work = tmp_path / ("on" if repair else "off")
    work.mkdir()
    path = shop_config(work, url, emulator, TOKEN, utf8_in_latin1=repair)
    raw = yaml.safe_load(path.read_text())
    raw["streams"]["categories"]["table"] = "latin1_categories"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_all(path, streams=["categories", "products"])
    return {k: v["name"] for k, v in emulator.store.categories.items()}


def test_utf8_stored_in_a_latin1_column_is_turned_back_when_asked(tmp_path, emulator):
    """An old MariaDB shop whose tables are declared latin1 but hold UTF-8 bytes: the server converts them
    as latin1 and 'Café' arrives as 'CafÃ©'. With ``source.utf8_in_latin1`` the double encoding is
    undone; real latin1 text ('Crème' stored as latin1) is left as it is."""
    url = latin1_shop({i: f"Café {i}".encode() for i in range(1, 50)} | {2: "Crème".encode("latin1")})
    assert latin1_names(tmp_path, url, emulator, False)["1"] == "CafÃ© 1"  # what a shop like this sends without the setting
    fixed = latin1_names(tmp_path, url, emulator, True)
    assert fixed["1"] == "Café 1" and fixed["2"] == "Crème"


def test_latin1_is_read_as_cp1252_and_utf8_in_it_is_warned_about_when_not_repaired(tmp_path, emulator, caplog):
    """MySQL's latin1 is cp1252: UTF-8 Cyrillic, dashes, the euro sign and emoji stored in a latin1 column
    come back exactly with ``source.utf8_in_latin1``; without it they go out as stored and one warning per
    column names the setting."""
    import logging

    from connectors.latin1 import undo

    wanted = {1: "Чайник \u2013 5 € 😀", 3: "\u201cQuoted\u201d \u2026 ™"}
    url = latin1_shop({i: text.encode() for i, text in wanted.items()} | {2: "Crème".encode("latin1")})
    with caplog.at_level(logging.WARNING, logger="altcraft_sync.shop_db"):
        garbled = latin1_names(tmp_path, url, emulator, False)
    assert garbled["1"] != wanted[1] and undo(garbled["1"]) == wanted[1]  # sent as stored: the mojibake
    warned = [r.getMessage() for r in caplog.records if "utf8_in_latin1" in r.getMessage()]
    assert len(warned) == 1 and "streams.categories: column name holds UTF-8 read as latin1" in warned[0]
    fixed = latin1_names(tmp_path, url, emulator, True)
    assert (fixed["1"], fixed["2"], fixed["3"]) == (wanted[1], "Crème", wanted[3])


def test_external_ids_are_looked_up_in_the_source_with_their_soft_delete_flag(shop_url, tmp_path, emulator):
    """How the engine learns a SKU will never arrive: marked deleted (``deleted_flag``), or absent when
    looked up by its external id (hard-deleted, or filtered out by the mapping)."""
    from altcraft_sync.config import load_config

    engine = build_shop(shop_url, orders=20)
    with engine.begin() as conn:
        codes = [r[0] for r in conn.execute(sa.select(demo_shop.skus.c.sku_code).order_by(demo_shop.skus.c.id).limit(3))]
        conn.execute(demo_shop.skus.update().where(demo_shop.skus.c.sku_code == codes[1]).values(is_deleted=True))
        conn.execute(demo_shop.sku_regions.delete().where(demo_shop.sku_regions.c.sku_id.in_(
            sa.select(demo_shop.skus.c.id).where(demo_shop.skus.c.sku_code == codes[2]))))
        conn.execute(demo_shop.skus.delete().where(demo_shop.skus.c.sku_code == codes[2]))
    src = ShopSource(load_config(shop_config(tmp_path, shop_url, emulator, TOKEN)))
    src.bind()
    try:
        assert src.find_external_ids("skus", [*codes, "no-such-sku"]) == {codes[0]: False, codes[1]: True}
        with engine.begin() as conn:
            article = conn.execute(sa.select(demo_shop.products.c.article).limit(1)).scalar()
        assert src.find_external_ids("products", [article, "x"]) == {article: False}
    finally:
        src.close()
