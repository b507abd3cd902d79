"""Streams as data: the registry drives the config, the source, the mapper and the dispatcher, so a new
stream is a spec and a settings section, with no engine edit."""

from __future__ import annotations

import typing
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from altcraft_sync import streams as registry
from altcraft_sync.catalogue import PRODUCT_FIELDS
from altcraft_sync.config import load_config, parse_config
from altcraft_sync.errors import ConfigError
from altcraft_sync.sources import CatalogStream
from altcraft_sync.streams import StreamSpec
from flows.streams import StreamName
from tests.conftest import TOKEN
from tests.helpers import build_shop, db_now, run_all, shop_config

GIFT_CARDS = StreamSpec(
    name="gift_cards", entity="gift_card", source_model=CatalogStream, fields=PRODUCT_FIELDS,
    mapper="transforms.catalog:map_catalog", import_method="market/products/import",
    delete_method="market/products/delete",
)
"""A toy fifth stream: gift cards from their own table, sent to Altcraft as products."""


def test_flow_parameter_literal_lists_the_built_in_streams() -> None:
    assert typing.get_args(StreamName) == tuple(s.name for s in registry.BUILT_IN)


def test_every_built_in_mapper_resolves() -> None:
    for spec in registry.BUILT_IN:
        assert callable(spec.map_function()), spec.name


def test_an_unknown_stream_section_is_one_line_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"streams": {"vouchers": {"table": "v", "primary_key": "id", "updated_at": "u",
                                              "columns": {"external_id": "id"}}}})
    assert "streams.vouchers: not a stream" in str(err.value) and "\n" not in str(err.value)


def test_a_bad_section_names_its_dotted_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"streams": {"categories": {"table": "c", "query": "SELECT 1", "primary_key": "id",
                                                 "updated_at": "u", "columns": {"external_id": "id", "name": "n"}}}})
    assert "streams.categories" in str(err.value) and "exactly one of 'table' or 'query'" in str(err.value)


def test_registering_a_known_name_or_entity_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"), registry.registered(registry.get("orders")):
        pass
    clash = StreamSpec(name="cards", entity="product", source_model=CatalogStream, fields=PRODUCT_FIELDS,
                       mapper="transforms.catalog:map_catalog")
    with pytest.raises(ValueError, match="already synced"), registry.registered(clash):
        pass
    assert "cards" not in registry.names()


def _gift_card_shop(tmp_path: Path, emulator) -> tuple[sa.Engine, Path]:
    url = f"sqlite:///{tmp_path}/shop.db"
    engine = build_shop(url, orders=20)
    now = db_now(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE gift_cards (id INTEGER PRIMARY KEY, title TEXT, amount NUMERIC, "
                             "changed_at TIMESTAMP, gone INTEGER DEFAULT 0)"))
        for i in range(1, 6):
            conn.execute(sa.text("INSERT INTO gift_cards VALUES (:i, :t, :a, :c, 0)"),
                         {"i": i, "t": f"Gift card {i}", "a": f"{i * 10}.00", "c": now})
    path = shop_config(tmp_path, url, emulator, TOKEN)
    raw = yaml.safe_load(path.read_text())
    raw["streams"]["gift_cards"] = {
        "table": "gift_cards", "primary_key": "id", "updated_at": "changed_at", "deleted_flag": "gone",
        "columns": {"external_id": "id", "name": "title", "price": "amount"},
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return engine, path


def test_a_fifth_stream_syncs_end_to_end_through_its_spec_alone(tmp_path: Path, emulator) -> None:
    engine, path = _gift_card_shop(tmp_path, emulator)
    with pytest.raises(ConfigError, match=r"streams\.gift_cards: not a stream"):
        load_config(path)  # unknown until its spec is registered
    with registry.registered(GIFT_CARDS):
        cfg = load_config(path)
        assert cfg.enabled_streams()[-1] == "gift_cards"
        first = run_all(cfg, streams=["gift_cards"])["gift_cards"]
        assert first.delivered == 5 and first.rejected == first.failed == 0
        assert {k: Decimal(v["price"]) for k, v in emulator.store.products.items()} == {
            str(i): Decimal(i * 10) for i in range(1, 6)}

        again = run_all(cfg, streams=["gift_cards"], run_id="second")["gift_cards"]
        assert again.requests == 0 and again.delivered == 0  # the ledger knows them all

        later = db_now(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE gift_cards SET title = 'Gift card 2 (gold)', changed_at = :c WHERE id = 2"),
                         {"c": later})
            conn.execute(sa.text("UPDATE gift_cards SET gone = 1, changed_at = :c WHERE id = 5"), {"c": later})
        third = run_all(cfg, streams=["gift_cards"], run_id="third")["gift_cards"]
        assert third.delivered == 1 and third.deleted == 1
        assert emulator.store.products["2"]["name"] == "Gift card 2 (gold)"
        assert "5" not in emulator.store.products
    assert "gift_cards" not in registry.names()
