"""The ledger's profile ids and owners: kept across outcomes that bring none, read back for ``forget`` and
``verify``, and added in place to a state database of the previous schema."""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import SecretStr

from altcraft_sync.config import StateSettings
from connectors.state import LedgerEntry, StateStore
from connectors.state.schema import SCHEMA_VERSION


def store(tmp_path) -> StateStore:
    return StateStore(StateSettings(url=SecretStr(f"sqlite:///{tmp_path}/state.db")))


def test_profile_ids_and_owners_are_kept_and_read_back(tmp_path):
    st = store(tmp_path)
    st.commit_chunk(stream="customers", entries=[
        LedgerEntry("customer", "email:a@x.io", 7, "f1", "delivered", altcraft_id="p-a"),
        LedgerEntry("customer", "phone:+79000000001", 8, "f2", "delivered", altcraft_id="p-b")])
    st.commit_chunk(stream="orders", entries=[
        LedgerEntry("order", "1", 1, "o1", "delivered", owner="email:a@x.io"),
        LedgerEntry("order", "2", 2, "o2", "delivered", owner="phone:+79000000001"),
        LedgerEntry("order", "3", 3, "o3", "deferred", owner="email:a@x.io")])
    # a later outcome without an id (a failed re-send) keeps the one Altcraft gave
    st.commit_chunk(stream="customers", entries=[LedgerEntry("customer", "email:a@x.io", 7, "f3", "failed")])
    assert st.altcraft_ids("customer") == {"phone:+79000000001": "p-b"}  # only delivered ones
    (row,) = st.people(["customer", "guest"], "7")
    assert (row.external_id, row.altcraft_id, row.status) == ("email:a@x.io", "p-a", "failed")
    assert [r.external_id for r in st.people(["customer"], "phone:+79000000001")] == ["phone:+79000000001"]
    assert [r.external_id for r in st.owned("order", ["email:a@x.io"])] == ["1", "3"]
    st.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, None, "deleted")])
    assert [r.external_id for r in st.owned("order", ["email:a@x.io"])] == ["3"]
    st.close()


def reopened_as(tmp_path, st: StateStore, version: int, dropped: list[tuple[str, str]]) -> StateStore:
    """``st``'s database as an older altcraft-sync left it (without the ``dropped`` (table, column)s, at
    ``version``), opened again: it must come back migrated to the current schema."""
    with st.engine.begin() as conn:
        for table, column in dropped:
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(sa.text(f"UPDATE schema_version SET version = {version}"))
    st.close()
    st = store(tmp_path)
    with st.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM schema_version")).scalar() == SCHEMA_VERSION
    return st


def test_a_version_1_state_database_gets_the_new_columns(tmp_path):
    st = store(tmp_path)
    st.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "o1", "delivered")])
    st = reopened_as(tmp_path, st, 1, [("ledger", "owner"), ("ledger", "altcraft_id"), ("ledger", "raw_digest"),
                                       ("quarantine", "raw_digest")])  # as altcraft-sync before profiles left it
    st.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "o2", "delivered", owner="email:a@x.io")])
    assert [r.external_id for r in st.owned("order", ["email:a@x.io"])] == ["1"]
    assert st.known("order", ["1"])["1"].fingerprint == "o2"
    st.close()


def test_a_version_2_state_database_gets_the_raw_digests(tmp_path):
    st = store(tmp_path)
    st.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "o1", "delivered")], digests={("order", "1"): 3})
    # as altcraft-sync before raw-row digests left it
    st = reopened_as(tmp_path, st, 2, [("ledger", "raw_digest"), ("quarantine", "raw_digest")])
    assert st.raw_digests("order", ["1"]) == {}  # an old row has none: always mapped
    st.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "o1", "delivered")],
                    quarantined=[("order", "2", 2, [{"check": "c", "field": "f", "value": None}])],
                    digests={("order", "1"): 4, ("order", "2"): 5})
    assert st.raw_digests("order", ["1", "2"]) == {"1": ("delivered", 4), "2": ("invalid", 5)}
    st.close()


def test_a_version_3_state_database_makes_categories_rejected_for_good_retryable_once(tmp_path):
    st = store(tmp_path)
    st.commit_chunk(stream="categories", entries=[
        LedgerEntry("category", "6", 6, "c6", "rejected", 400, "parent '4' does not exist", permanent=True),
        LedgerEntry("category", "7", 7, "c7", "delivered")])
    st.commit_chunk(stream="orders", entries=[LedgerEntry("order", "1", 1, "o1", "rejected", 400, "bad", permanent=True)])
    st = reopened_as(tmp_path, st, 3, [])  # as altcraft-sync before the category tree fix left it
    assert st.pending("category") == [("6", "6")]  # the next sync's retry pass sends it once more
    assert st.pending("order") == []  # any other stream's permanent rejections stay what they were
    assert st.known("category", ["7"])["7"].status == "delivered"
    st.commit_chunk(stream="categories", entries=[
        LedgerEntry("category", "6", 6, "c6", "rejected", 400, "name too long", permanent=True)])
    st.close()
    st = store(tmp_path)  # already at version 4: a new refusal for good stays one
    assert st.pending("category") == []
    st.close()
