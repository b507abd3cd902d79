"""Records whose raw source rows did not change are not mapped again (``transforms.digest``): end to end
against the emulator, on the demo shop with its planted invalid rows. What is mapped is counted by
wrapping the one entry point every chunk goes through (``transforms.chunk.map_chunk``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from altcraft_sync.config import load_config
from connectors.state import StateStore
from sandbox import demo_shop
from tests.conftest import TOKEN
from tests.helpers import build_shop, just_before, run_all, shop_config

ROOT = Path(__file__).resolve().parents[2]
YEARS = 10 * 365 * 86400


@pytest.fixture
def demo(tmp_path, emulator) -> tuple[Path, sa.Engine]:
    """The settings file and the database of a demo shop of 120 orders (with its planted invalid rows)."""
    url = f"sqlite:///{tmp_path}/shop.db"
    engine = build_shop(url, orders=120)
    return shop_config(tmp_path, url, emulator, TOKEN), engine


@pytest.fixture
def mapped_ids(monkeypatch):
    """The external ids of every parent row handed to the mapper, per stream, in this process."""
    import transforms.chunk

    seen: dict[str, list[str]] = {}
    real = transforms.chunk.map_chunk

    def counting(parents, children, m):
        seen.setdefault(m.stream, []).extend(str(e) for e in parents["external_id"].tolist())
        return real(parents, children, m)

    monkeypatch.setattr(transforms.chunk, "map_chunk", counting)
    return seen


def edit(path: Path, **changes) -> None:
    raw = yaml.safe_load(path.read_text())
    for section, values in changes.items():
        raw[section].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_a_lookback_re_read_maps_nothing_and_counts_as_before(demo, emulator, mapped_ids, monkeypatch):
    from connectors.state.ledger import LedgerStore

    looked_up: list[str] = []  # the entities whose digests a run asks the ledger for
    real = LedgerStore.raw_digests
    monkeypatch.setattr(LedgerStore, "raw_digests", lambda self, entity, ids: looked_up.append(entity) or real(self, entity, ids))
    cfg_path = demo[0]
    first = run_all(cfg_path)
    assert len(set(mapped_ids["orders"])) == 120 and first["orders"].invalid >= 3
    # a first sync asks for no digest, though each stream's custom field definitions went with its first record
    assert looked_up == [] and first["orders"].delivered > 0
    edit(cfg_path, source={"lookback_seconds": YEARS})  # every record is read again, unchanged
    mapped_ids.clear()
    requests = emulator.stats["api_requests"]
    again = run_all(cfg_path, run_id="again")
    assert mapped_ids == {}  # the quarantine re-read included
    assert {"order", "sku", "product", "category"} <= set(looked_up)
    orders = again["orders"]
    assert orders.extracted == 120  # the quarantine re-read has nothing left: the lookback saw them all
    assert orders.unchanged == first["orders"].delivered and orders.still_invalid == first["orders"].invalid
    assert orders.unmapped == orders.extracted and orders.invalid == orders.delivered == 0
    assert again["skus"].still_invalid == 1 and again["skus"].unmapped == again["skus"].extracted
    assert again["categories"].unmapped == again["categories"].extracted == 6  # the tree, unchanged as a whole
    assert emulator.stats["api_requests"] == requests


def test_one_changed_category_re_maps_its_whole_tree(demo, emulator, mapped_ids):
    cfg_path, engine = demo
    run_all(cfg_path, streams=["categories"])
    edit(cfg_path, source={"lookback_seconds": YEARS})
    with engine.begin() as conn:  # a parent cycle is checked across the chunk: no category may skip alone
        conn.execute(demo_shop.categories.update().where(demo_shop.categories.c.id == 2)
                     .values(name="Renamed", updated_at=just_before(engine)))
    mapped_ids.clear()
    stats = run_all(cfg_path, streams=["categories"], run_id="second")
    assert sorted(mapped_ids["categories"]) == ["1", "2", "3", "4", "5", "6"]
    assert stats["categories"].unmapped == 0 and stats["categories"].changed == 1


def test_a_changed_line_re_maps_and_re_sends_only_its_order(demo, emulator, mapped_ids):
    cfg_path, engine = demo
    run_all(cfg_path)
    edit(cfg_path, source={"lookback_seconds": YEARS})
    with engine.connect() as conn:
        line_id = conn.execute(sa.select(demo_shop.order_lines.c.id).where(demo_shop.order_lines.c.order_id == 50)
                               .limit(1)).scalar()
    demo_shop.touch(engine, order_ids=[], line_id=line_id, at=just_before(engine))
    mapped_ids.clear()
    counts = dict(emulator.import_counts)
    stats = run_all(cfg_path, run_id="second")
    assert mapped_ids.get("orders") == ["50"]
    assert stats["orders"].delivered == 1 and stats["orders"].unmapped == stats["orders"].extracted - 1
    assert {k for k, v in emulator.import_counts.items() if v != counts.get(k, 0)} == {("order", "50")}


def test_a_config_change_re_maps_everything_once(demo, emulator, mapped_ids):
    cfg_path = demo[0]
    first = run_all(cfg_path)
    edit(cfg_path, source={"lookback_seconds": YEARS}, sync={"max_name_length": 999})  # no payload changes
    mapped_ids.clear()
    requests = emulator.stats["api_requests"]
    second = run_all(cfg_path, run_id="second")
    assert sorted(mapped_ids["orders"]) == sorted(set(mapped_ids["orders"]))  # each once: the heal skipped them
    assert len(mapped_ids["orders"]) == 120 and second["orders"].unmapped == second["orders"].invalid == 0
    assert second["orders"].unchanged == first["orders"].delivered
    assert emulator.stats["api_requests"] == requests  # same payloads: nothing sent
    mapped_ids.clear()
    run_all(cfg_path, run_id="third")  # the new digests were kept, though nothing was sent
    assert mapped_ids == {}


def test_a_quarantined_order_heals_when_its_joined_customer_is_fixed(demo, emulator, mapped_ids):
    cfg_path, engine = demo
    first = run_all(cfg_path)
    state = StateStore(load_config(cfg_path).state)
    quarantined = {r["external_id"]: [c["check"] for c in r["reasons"]] for r in state.quarantine_rows()
                   if r["entity"] == "order"}
    no_email = sorted(e for e, checks in quarantined.items() if checks == ["matching 'email' needs email"])
    assert no_email  # the demo shop plants orders whose customer has no e-mail
    with engine.begin() as conn:  # the fix is in the joined table: no order's updated_at moves
        customer = conn.execute(sa.select(demo_shop.orders.c.customer_id)
                                .where(demo_shop.orders.c.id == int(no_email[0]))).scalar()
        conn.execute(demo_shop.customers.update().where(demo_shop.customers.c.id == customer)
                     .values(email="fixed@example.com"))
        theirs = sorted(str(i) for i in conn.execute(sa.select(demo_shop.orders.c.id).where(
            demo_shop.orders.c.customer_id == customer, demo_shop.orders.c.id.in_([int(e) for e in quarantined]))).scalars())
    healed = [e for e in theirs if e in no_email]  # the customer's others stay invalid for another reason
    mapped_ids.clear()
    second = run_all(cfg_path, run_id="second")
    assert sorted(mapped_ids["orders"]) == theirs  # the rest of the quarantine is unchanged: not mapped
    assert set(healed) <= set(emulator.store.orders) and second["orders"].delivered == len(healed)
    assert second["orders"].still_invalid == first["orders"].invalid - len(healed)
    assert not set(healed) & {r["external_id"] for r in state.quarantine_rows() if r["entity"] == "order"}
    mapped_ids.clear()
    run_all(cfg_path, run_id="third")
    assert mapped_ids == {}


CHECK_IMPORTS = """
import sys
from cli.main import app
try:
    app(["sync", "--config", sys.argv[1]])
except SystemExit as done:
    code = done.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "pandera" or m == "transforms.contract")
print("exit", code, "loaded", loaded)
"""


def test_a_no_change_run_of_the_demo_shop_does_not_import_pandera(demo, emulator):
    cfg_path = demo[0]
    first = run_all(cfg_path)
    assert first["orders"].invalid >= 3 and first["skus"].invalid == 1  # the quarantine has records to re-read
    env = {**os.environ, "ALTCRAFT_TOKEN": TOKEN, "PREFECT_API_URL": ""}
    done = subprocess.run([sys.executable, "-c", CHECK_IMPORTS, str(cfg_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "exit 0 loaded []", done.stdout + done.stderr


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_a_record_has_one_digest_however_it_is_read_and_a_worker_skips_it(dialect, tmp_path, emulator):
    """On every database: a record read in a keyset page (a lookback) and again by key (the quarantine re-read)
    has one digest, in the run's process and in a map worker (its own connection); the worker skips what the
    ledger says is unchanged and maps the rest."""
    from engine.mapping import ChunkMapper, fetch_and_map
    from runner.runtime import open_runtime
    from tests.helpers import shop_url_for
    from transforms.spec import mapping_spec

    url = shop_url_for(dialect, tmp_path)
    build_shop(url, orders=60)
    cfg = load_config(shop_config(tmp_path, url, emulator, TOKEN, map_workers=1))
    m = mapping_spec(cfg, "orders")
    rt = open_runtime(cfg, need_client=False)
    mapper = ChunkMapper(cfg, 1, rt.source)
    try:
        page = next(rt.source.read_changes("orders", None, rt.source.upper_bound("orders", -3600), 10**6))[0]
        paged = fetch_and_map(m, page, "orders.lines", rt.source, known={}).digests
        keyed = rt.source.fetch_by_keys("orders", page["_pk"].tolist()[::7])  # a few, another read, another order
        by_key = fetch_and_map(m, keyed, "orders.lines", rt.source, known={}).digests
        assert len(by_key) == len(keyed) and all(paged[e] == d for e, d in by_key.items())
        mapper.start()
        assert mapper.wait_ready(120)
        known = {e: ("delivered", d) for e, d in list(paged.items())[::2]}
        there = mapper.submit(m, page, "orders.lines", known=known).result(timeout=120)
    finally:
        mapper.shutdown()
        rt.close()
    assert there.skipped == dict.fromkeys(known, "delivered")
    assert there.digests == {e: d for e, d in paged.items() if e not in known}
    mapped = {p.external_id for p in there.mapped.payloads} | set(there.mapped.quarantine["external_id"].astype(str))
    assert mapped == set(there.digests)
