"""The customers and guests streams end to end: the demo shop with people, into an emulator that refuses an
order whose buyer has no profile (issue 28's "Done when")."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from altcraft_sync.config import load_config
from cli.main import app
from connectors.state import StateStore
from sandbox import demo_shop as D
from sandbox.emulator import AltcraftEmulator
from tests.conftest import TOKEN
from tests.helpers import ALL_STREAMS, build_shop, db_now, mapped_source, run_all, shop_config, shop_url_for


@pytest.fixture
def strict_emulator():
    emu = AltcraftEmulator(token=TOKEN, strict_data=True, require_profiles=True).start()
    yield emu
    emu.stop()


@pytest.fixture(params=["sqlite"])
def people_shop(request, tmp_path, strict_emulator):
    """The demo shop with people (SQLite; a test parametrizes ``people_shop`` to run on the servers)."""
    url = shop_url_for(request.param, tmp_path)
    engine = build_shop(url, orders=300, people=True)
    return engine, shop_config(tmp_path, url, strict_emulator, TOKEN, people=True)


def _profile_keys(emu: AltcraftEmulator) -> list[str]:
    """Every stored profile's key as the sync keys it (e-mail, else the phone)."""
    return [f"email:{p['email']}" if p.get("email") else f"phone:{p['phones'][0]}" for p in emu.store.profiles.values()]


def _rename(engine: sa.Engine, customer_id: int, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(D.customers.update().where(D.customers.c.id == customer_id)
                     .values(first_name=name, updated_at=db_now(engine) - timedelta(seconds=1)))


@pytest.mark.parametrize("people_shop", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_every_buyer_is_a_profile_before_its_orders(people_shop, strict_emulator):
    engine, cfg = people_shop
    stats = run_all(cfg, ALL_STREAMS)
    orders = stats["orders"]
    expected = mapped_source(cfg)["orders"]
    assert orders.rejected == orders.failed == orders.deferred == 0
    assert set(strict_emulator.store.orders) == set(expected)  # every valid order, no refusal for a missing profile
    # every buyer exists once: registered customers and guests, by e-mail or else by phone
    keys = _profile_keys(strict_emulator)
    assert len(keys) == len(set(keys))
    state = StateStore(load_config(cfg).state)
    # every delivered order was sent for one of these profiles
    assert {r.external_id for r in state.owned("order", keys)} == set(expected)
    with engine.connect() as conn:
        guests = conn.execute(sa.select(sa.func.count()).select_from(D.orders).where(D.orders.c.customer_id.is_(None))).scalar()
        phone_only = conn.execute(sa.select(D.customers.c.phone).where(D.customers.c.email.is_(None))).scalars().all()
    assert guests > 0 and phone_only and all(f"phone:{p}" in keys for p in phone_only)
    assert stats["guests"].delivered > 0 and any(k.startswith("phone:+7911") for k in keys)  # phone-only guests
    # order 13 is a guest order under customer 2's e-mail: it belongs to the customer's profile, not a guest's
    assert state.people(["customer"], "2")[0].external_id == "email:customer2@example.com"
    assert [r.external_id for r in state.owned("order", ["email:customer2@example.com"]) if r.external_id == "13"] == ["13"]
    assert not state.people(["guest"], "email:customer2@example.com")
    # the ledger keeps the profile id Altcraft returned
    ids = state.altcraft_ids("customer")
    assert ids and all(pid in strict_emulator.store.profiles for pid in ids.values())
    # only consenting customers have subscriptions (newsletter: every 3rd id, SMS: every 5th), guests none
    with engine.connect() as conn:
        consent = {f"email:{e}" if e else f"phone:{p}": (n, s) for e, p, n, s in conn.execute(
            sa.select(D.customers.c.email, D.customers.c.phone, D.customers.c.newsletter, D.customers.c.sms_consent))}
    for key, profile in zip(keys, strict_emulator.store.profiles.values()):
        channels = sorted(s["channel"] for s in profile["subscriptions"])
        newsletter, sms = consent.get(key, (False, False))
        assert channels == sorted([c for c, ok in (("email", newsletter and profile.get("email")), ("sms", sms)) if ok]), key
        assert all(s["status"] == "subscribed" for s in profile["subscriptions"])
    state.close()


def test_no_change_sends_nothing_and_a_rename_sends_one_profile(people_shop, strict_emulator):
    engine, cfg = people_shop
    run_all(cfg, ALL_STREAMS)
    before = strict_emulator.stats["api_requests"]
    again = run_all(cfg, ALL_STREAMS, run_id="again")
    assert strict_emulator.stats["api_requests"] == before
    assert sum(s.delivered + s.deferred for s in again.values()) == 0
    imported = strict_emulator.stats["profile_imports"]
    _rename(engine, 4, "Renamed")
    third = run_all(cfg, ALL_STREAMS, run_id="third")
    assert third["customers"].delivered == 1 and third["customers"].requests == 1
    assert strict_emulator.stats["profile_imports"] == imported + 1
    assert strict_emulator.stats["api_requests"] == before + 1
    (profile,) = [p for p in strict_emulator.store.profiles.values() if p.get("email") == "customer4@example.com"]
    assert profile["_fname"] == "Renamed"


def test_an_unsubscribe_in_altcraft_survives_the_next_sync(people_shop, strict_emulator):
    engine, cfg = people_shop
    run_all(cfg, ALL_STREAMS)
    (profile,) = [p for p in strict_emulator.store.profiles.values() if p.get("email") == "customer3@example.com"]
    assert [s["channel"] for s in profile["subscriptions"]] == ["email"]  # customer 3 agreed to the newsletter
    profile["subscriptions"][0]["status"] = "unsubscribed"  # the person unsubscribed in Altcraft
    _rename(engine, 3, "Gleb II")
    run_all(cfg, ALL_STREAMS, run_id="after")
    assert profile["_fname"] == "Gleb II"
    assert [(s["channel"], s["status"]) for s in profile["subscriptions"]] == [("email", "unsubscribed")]



def test_a_consent_withdrawn_in_the_shop_unsubscribes_with_withdrawn_consent_unsubscribe(people_shop, strict_emulator):
    """``withdrawn_consent: unsubscribe``: customer 3 agreed to the newsletter and is subscribed; once the
    shop says no, the next sync sends the subscription as ``unsubscribed`` and Altcraft stops mailing them.
    Their other fields and everyone else's subscriptions are untouched."""
    engine, cfg = people_shop
    raw = yaml.safe_load(cfg.read_text())
    raw["streams"]["customers"]["withdrawn_consent"] = "unsubscribe"
    cfg.write_text(yaml.safe_dump(raw))
    run_all(cfg, ALL_STREAMS)
    store = strict_emulator.store.profiles
    (profile,) = [p for p in store.values() if p.get("email") == "customer3@example.com"]
    def email(p: dict) -> list[str]:
        return [s["status"] for s in p["subscriptions"] if s["channel"] == "email"]

    assert email(profile) == ["subscribed"]  # (their SMS consent is false from the start: sent unsubscribed)
    others = {p["email"]: [dict(s) for s in p["subscriptions"]] for p in store.values()
              if p.get("email") not in (None, "customer3@example.com")}
    with engine.begin() as conn:
        conn.execute(D.customers.update().where(D.customers.c.id == 3)
                     .values(newsletter=False, updated_at=db_now(engine) - timedelta(seconds=1)))
    after = run_all(cfg, ALL_STREAMS, run_id="withdrawn")
    assert after["customers"].delivered == 1
    assert email(profile) == ["unsubscribed"]
    assert {p["email"]: p["subscriptions"] for p in store.values() if p.get("email") in others} == others


def test_an_erased_customer_is_reported_and_forget_deletes_exactly_them(people_shop, strict_emulator):
    engine, cfg = people_shop
    run_all(cfg, ALL_STREAMS)
    state = StateStore(load_config(cfg).state)
    theirs = {r.external_id for r in state.owned("order", ["email:customer2@example.com"])}
    assert "13" in theirs and len(theirs) > 1
    others = set(strict_emulator.store.orders) - theirs
    with engine.begin() as conn:  # erased in the shop: flagged, not deleted by the sync
        conn.execute(D.customers.update().where(D.customers.c.id == 2)
                     .values(is_deleted=True, updated_at=db_now(engine) - timedelta(seconds=1)))
    stats = run_all(cfg, ALL_STREAMS, run_id="erased")
    assert any("email:customer2@example.com" in w and "forget" in w for w in stats["customers"].warnings)
    assert "customer2@example.com" in {p.get("email") for p in strict_emulator.store.profiles.values()}
    runner = CliRunner()
    listed = runner.invoke(app, ["forget", "--customer", "2", "--config", str(cfg), "--dry-run"])
    assert listed.exit_code == 0, listed.output
    assert "email:customer2@example.com" in listed.output and all(f"order {o} " in listed.output for o in theirs)
    assert theirs <= set(strict_emulator.store.orders)  # a dry run deletes nothing
    profiles = len(strict_emulator.store.profiles)
    done = runner.invoke(app, ["forget", "--customer", "2", "--config", str(cfg)])
    assert done.exit_code == 0, done.output
    assert set(strict_emulator.store.orders) == others
    assert len(strict_emulator.store.profiles) == profiles - 1
    assert "customer2@example.com" not in {p.get("email") for p in strict_emulator.store.profiles.values()}
    assert {r.status for r in state.people(["customer"], "2")} == {"deleted"}
    assert state.owned("order", ["email:customer2@example.com"]) == []
    state.close()


def test_reconcile_deletes_vanished_orders_and_only_reports_people_who_left(people_shop, strict_emulator):
    """``sync --reconcile`` over every stream: a hard-deleted order is deleted in Altcraft; a hard-deleted
    customer's profile stays (deleting a person is ``forget``'s), and the run names them."""
    engine, cfg = people_shop
    run_all(cfg, ALL_STREAMS)
    profiles = len(strict_emulator.store.profiles)
    with engine.begin() as conn:
        gone_order = conn.execute(sa.select(sa.func.max(D.orders.c.id))).scalar()
        conn.execute(D.order_lines.delete().where(D.order_lines.c.order_id == gone_order))
        conn.execute(D.orders.delete().where(D.orders.c.id == gone_order))
        buyers = sa.select(D.orders.c.customer_id).where(D.orders.c.customer_id.is_not(None))
        loner = conn.execute(sa.select(sa.func.min(D.customers.c.id)).where(D.customers.c.id.not_in(buyers),
                                                                          D.customers.c.email.is_not(None))).scalar()
        conn.execute(D.customers.delete().where(D.customers.c.id == loner))
    assert str(gone_order) in strict_emulator.store.orders
    out = CliRunner().invoke(app, ["sync", "--reconcile", "--json", "--config", str(cfg)])
    assert out.exit_code in (0, 1), out.output
    assert str(gone_order) not in strict_emulator.store.orders
    assert len(strict_emulator.store.profiles) == profiles  # nobody deleted by a sync
    assert f"1 left the shop (e.g. {loner})" in out.output and "forget --customer" in out.output, out.output


def test_verify_reads_profiles_back_and_a_dry_run_counts_them(people_shop, strict_emulator):
    from runner.runtime import open_runtime
    from runner.verify import verify_streams

    _, cfg = people_shop
    dry = run_all(cfg, ALL_STREAMS, dry_run=True, run_id="dry")
    assert dry["customers"].new == 100 and dry["orders"].deferred == 0  # the profiles it would send count
    assert strict_emulator.stats["api_requests"] == 0
    run_all(cfg, ALL_STREAMS)
    (profile,) = [p for p in strict_emulator.store.profiles.values() if p.get("email") == "customer6@example.com"]
    profile["_lname"] = "Edited in Altcraft"
    profile["subscriptions"] = [{**s, "status": "unsubscribed"} for s in profile["subscriptions"]]  # not a difference
    rt = open_runtime(load_config(cfg))
    try:
        found = verify_streams(rt.config, rt.source, rt.state, rt.client, run_id="v1", streams=["customers", "guests"])
        assert (found["customers"].ok, found["customers"].different, found["customers"].extra_not_ours) == (99, 1, 0)
        assert found["customers"].fields == {"_lname": 1} and found["guests"].differences == 0
        assert found["guests"].ok == len(strict_emulator.store.profiles) - 100
        repaired = verify_streams(rt.config, rt.source, rt.state, rt.client, run_id="v2", streams=["customers"],
                                  repair=True)
        assert repaired["customers"].resent == 1 and profile["_lname"] != "Edited in Altcraft"
        assert verify_streams(rt.config, rt.source, rt.state, rt.client, run_id="v3",
                              streams=["customers"])["customers"].differences == 0
    finally:
        rt.close()
