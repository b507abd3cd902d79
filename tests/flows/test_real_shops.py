"""End to end on the demo shop (SQLite, the strict emulator): what real shops hold, and that every valid
order arrives. SKUs deleted in the shop (soft, hard) or refused for good while orders name them, under
both readings of an order line naming an unknown product; negative stock; phone-only orders; the trigger
window on a months-old first load; ``sync.max_defer``; a catalogue that never ran."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from altcraft_sync.config import load_config
from connectors.state import StateStore
from sandbox import demo_shop
from tests.conftest import TOKEN
from tests.helpers import build_shop, just_before, mapped_source, run_all, shop_config


@pytest.fixture
def shop(tmp_path):
    url = f"sqlite:///{tmp_path}/shop.db"
    return url, build_shop(url, orders=60)


def config(tmp_path: Path, url: str, emulator: Any, **sync: Any) -> Path:
    path = shop_config(tmp_path, url, emulator, TOKEN)
    raw = yaml.safe_load(path.read_text())
    raw["sync"].update(sync)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def edit(path: Path, change: Any) -> None:
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def skus_named_by_orders(engine: sa.Engine, n: int) -> list[tuple[int, str]]:
    """(id, code) of ``n`` SKUs that some order names, the most named first."""
    lines, skus = demo_shop.order_lines, demo_shop.skus
    with engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(
            sa.select(skus.c.id, skus.c.sku_code).join(lines, lines.c.sku_code == skus.c.sku_code)
            .group_by(skus.c.id, skus.c.sku_code).order_by(sa.func.count().desc(), skus.c.id).limit(n))]


def orders_naming(engine: sa.Engine, code: str) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(demo_shop.order_lines.c.order_id).distinct()
                                   .where(demo_shop.order_lines.c.sku_code == code)).scalars())


def delete_sku(engine: sa.Engine, sku_id: int, how: str) -> None:
    skus = demo_shop.skus
    with engine.begin() as conn:
        if how == "soft":
            conn.execute(skus.update().where(skus.c.id == sku_id).values(is_deleted=True, updated_at=just_before(engine)))
        else:
            conn.execute(demo_shop.sku_regions.delete().where(demo_shop.sku_regions.c.sku_id == sku_id))
            conn.execute(skus.delete().where(skus.c.id == sku_id))


def touch_orders(engine: sa.Engine, ids: list[int], **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(demo_shop.orders.update().where(demo_shop.orders.c.id.in_(ids))
                     .values(updated_at=just_before(engine), **values))


def verify(path: Path, **kw: Any) -> dict[str, Any]:
    from runner.runtime import open_runtime
    from runner.verify import verify_streams

    rt = open_runtime(path)
    try:
        return verify_streams(rt.config, rt.source, rt.state, rt.client, run_id="verify-test", **kw)
    finally:
        rt.close()


def assert_every_valid_order_arrived(path: Path, emulator: Any) -> None:
    """Every order the source maps as valid is in Altcraft as the source says it is, and none waits."""
    expected = mapped_source(path)["orders"]
    held = emulator.store.orders
    missing = sorted(set(expected) - set(held))
    assert not missing, f"{len(missing)} valid orders never arrived, e.g. {missing[:5]}"
    for ext, record in expected.items():
        got = held[ext]
        assert (got["status"], [x["product"] for x in got["lines"]]) == \
            (record["status"], [x["product"] for x in record["lines"]]), ext
    waiting = [r for r in StateStore(load_config(path).state).rejected_rows() if r["status"] == "deferred"]
    assert not waiting, waiting[:3]


@pytest.mark.parametrize("how", ["soft", "hard"])
@pytest.mark.parametrize("known_products_only", [True, False], ids=["unknown-refused", "unknown-accepted"])
def test_orders_naming_a_sku_deleted_in_the_shop_all_arrive(tmp_path, shop, emulator, how, known_products_only):
    """A SKU deleted before it was ever sent, and one deleted after its orders went out (whose later status
    changes must still arrive), whichever way Altcraft treats a line naming an unknown product."""
    url, engine = shop
    emulator.require_known_products = known_products_only
    (never_id, never_code), (later_id, later_code) = skus_named_by_orders(engine, 2)
    delete_sku(engine, never_id, how)  # deleted before the first load: it never reaches Altcraft
    path = config(tmp_path, url, emulator)
    first = run_all(path)
    assert never_code not in emulator.store.skus and first["orders"].stand_ins >= 1
    stand_in = emulator.store.products[never_code]
    assert stand_in["is_available"] is False and stand_in["name"]
    valid = set(mapped_source(path)["orders"])
    assert set(map(str, orders_naming(engine, never_code))) & valid <= set(emulator.store.orders)

    delete_sku(engine, later_id, how)  # deleted after its orders went out; then those orders move on
    later_orders = orders_naming(engine, later_code)
    touch_orders(engine, later_orders, state="completed")
    run_all(path, run_id="second")
    run_all(path, run_id="third")
    later_valid = [str(o) for o in later_orders if str(o) in valid]
    assert later_valid and {emulator.store.orders[o]["status"] for o in later_valid} == {"delivered"}
    assert_every_valid_order_arrived(path, emulator)
    products = verify(path, streams=["products"], repair=True)["products"]
    assert products.stand_ins >= 1 and products.extra_not_ours == 0 and products.differences == 0
    assert never_code in emulator.store.products  # verify's repair leaves the stand-ins the orders name


def test_orders_naming_a_sku_altcraft_refused_for_good_arrive(tmp_path, shop, emulator):
    url, engine = shop
    (sku_id, code), = skus_named_by_orders(engine, 1)
    with engine.begin() as conn:  # valid by the contract; the account has no such currency: refused for good
        conn.execute(demo_shop.skus.update().where(demo_shop.skus.c.id == sku_id).values(currency="XAU"))
    path = config(tmp_path, url, emulator)
    stats = run_all(path)
    assert stats["skus"].rejected >= 1 and code not in emulator.store.skus
    assert emulator.store.products[code]["is_available"] is False  # the stand-in
    why = stats["orders"].samples["sent_without_dependency"][0]["reason"]
    assert why.startswith(f"{code!r} refused by Altcraft for good: 400 ") and "'XAU'" in why
    run_all(path, run_id="second")
    assert_every_valid_order_arrived(path, emulator)
    rows = {r["external_id"]: r for r in StateStore(load_config(path).state).rejected_rows(entity="sku")}
    assert rows[code]["status"] == "rejected"  # the SKU's own refusal stays visible


def test_negative_stock_holds_back_nothing(tmp_path, shop, emulator):
    """The contract sends the stock the mapping gives (api.md sets no sign rule): a mapping that says what
    negative stock means (none available) delivers the SKU; one that sends it raw leaves the verdict to
    Altcraft, and the orders arrive either way."""
    url, engine = shop
    (sku_id, code), = skus_named_by_orders(engine, 1)
    with engine.begin() as conn:
        conn.execute(demo_shop.skus.update().where(demo_shop.skus.c.id == sku_id).values(stock=-4))
    path = config(tmp_path, url, emulator)
    edit(path, lambda raw: raw["streams"]["skus"].update(
        table=None, query="SELECT s.*, CASE WHEN s.stock < 0 THEN 0 ELSE s.stock END AS on_hand, "
                          "CASE WHEN s.stock > 0 THEN s.available ELSE 0 END AS can_buy FROM skus s"))
    edit(path, lambda raw: (raw["streams"]["skus"].pop("table"),
                            raw["streams"]["skus"]["columns"].update(count="on_hand", is_available="can_buy")))
    stats = run_all(path)
    assert stats["skus"].invalid == 1  # the demo shop's one planted bad SKU, not the negative one
    assert (emulator.store.skus[code]["count"], emulator.store.skus[code]["is_available"]) == (0, False)
    assert_every_valid_order_arrived(path, emulator)


def test_a_phone_only_order_is_matched_by_phone(tmp_path, shop, emulator):
    url, engine = shop
    path = config(tmp_path, url, emulator)
    ids = sorted(mapped_source(path)["orders"], key=int)
    with engine.begin() as conn:
        buyer = dict(conn.execute(sa.select(demo_shop.orders.c.id, demo_shop.orders.c.customer_id)).all())
        phone_only = next(i for i in ids if buyer[int(i)] is not None)
        customer = buyer[int(phone_only)]
        # an order of another buyer keeps its e-mail (the demo shop may give the first orders one buyer)
        other = next(i for i in ids if buyer[int(i)] not in (None, customer))
        conn.execute(demo_shop.customers.update().where(demo_shop.customers.c.id == customer)
                     .values(email=None, phone="+7 900 555-01-02"))
    edit(path, lambda raw: raw["streams"]["orders"].update(
        query=raw["streams"]["orders"]["query"].replace("c.email", "c.email, c.phone"),
        matching={"mode": "email", "fallback": ["phone"], "columns": {"email": "email", "phone": "phone"}}))
    run_all(path)
    order = emulator.store.orders[phone_only]
    # the phone as its buyer's profile has it (issue 28: the order must find that profile)
    assert (order["matching"], order["phone"], order.get("email")) == ("phone", "+79005550102", None)
    assert emulator.store.orders[other]["matching"] == "email"
    assert_every_valid_order_arrived(path, emulator)


def test_a_months_old_first_load_fires_no_triggers_and_a_fresh_change_does(tmp_path, shop, emulator):
    url, engine = shop
    old = just_before(engine, 90 * 86400)
    with engine.begin() as conn:
        conn.execute(demo_shop.orders.update().values(updated_at=old))
        conn.execute(demo_shop.order_lines.update().values(updated_at=old))
    touch_orders(engine, [5])  # changed within the window
    path = config(tmp_path, url, emulator)
    stats = run_all(path)
    assert emulator.skip_triggers["5"] is False
    quiet = {o for o, skip in emulator.skip_triggers.items() if skip}
    assert len(quiet) == len(emulator.store.orders) - 1 and "5" not in quiet
    assert stats["orders"].without_triggers >= len(quiet) - 1  # the definitions' carrier may be one of them
    from runner.reporting import stream_line, summary_markdown

    note = f"{stats['orders'].without_triggers:,} sent without triggers (older than 24 h)"
    assert stats["orders"].notes == [note] and stream_line(stats["orders"], False).endswith(f"; {note}")
    assert f"- orders: {note}" in summary_markdown("sync", stats, "completed", False)
    touch_orders(engine, [6], state="completed")
    run_all(path, run_id="second")
    assert emulator.skip_triggers["6"] is False  # a fresh status change fires as before


@pytest.mark.parametrize("known_products_only", [True, False], ids=["unknown-refused", "unknown-accepted"])
def test_a_record_waits_at_most_max_defer(tmp_path, shop, emulator, known_products_only):
    """A SKU quarantined in the shop can still be fixed there: its orders wait, saying why, and go out
    once ``sync.max_defer`` has passed: delivered, or rejected with Altcraft's reason."""
    url, engine = shop
    (sku_id, code), = skus_named_by_orders(engine, 1)
    with engine.begin() as conn:
        conn.execute(demo_shop.skus.update().where(demo_shop.skus.c.id == sku_id).values(currency="rub!"))
    path = config(tmp_path, url, emulator, max_defer="3s")
    first = run_all(path)
    naming = {str(o) for o in orders_naming(engine, code)} & set(mapped_source(path)["orders"])
    assert first["orders"].deferred == len(naming)
    [reason] = first["orders"].deferred_reasons
    assert reason.startswith("quarantined in the shop (see altcraft-sync quarantine --stream skus)")
    assert not naming & set(emulator.store.orders)
    time.sleep(3.5)
    emulator.require_known_products = known_products_only
    second = run_all(path, run_id="second")
    assert second["orders"].deferred == 0 and code not in emulator.store.products  # no stand-in: it can arrive
    if known_products_only:
        rows = {r["external_id"]: r for r in StateStore(load_config(path).state).rejected_rows(entity="order")}
        assert {o for o in naming if rows[o]["status"] == "rejected" and code in rows[o]["error_text"]} == naming
        assert not naming & set(emulator.store.orders)
    else:
        assert naming <= set(emulator.store.orders)


def test_orders_alone_say_which_stream_to_run_first(tmp_path, shop, emulator):
    url, _ = shop
    path = config(tmp_path, url, emulator)
    stats = run_all(path, streams=["orders"])
    assert stats["orders"].delivered == 0 and stats["orders"].deferred > 0
    from runner.reporting import summary_markdown

    assert "| orders | the categories, products and skus streams never ran" in summary_markdown("sync", stats, "x", False)
    assert stats["orders"].warnings[-1:] == ["the categories, products and skus streams never ran: run them first "
                                        "(altcraft-sync sync --stream categories --stream products --stream skus); "
                                        "goes anyway after 24 h"]
