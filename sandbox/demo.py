"""The demo mapping, pointed at a demo shop, a state file and an emulator (``altcraft-sync demo`` runs the
main job with it: :mod:`cli.demo`; the tests and the benchmark write their configs with it)."""

from __future__ import annotations

from pathlib import Path

import yaml

HOME = Path(".altcraft-sync")
MAPPING = Path(__file__).with_name("demo-shop.yaml")
DEMO_TOKEN = "demo-sandbox-token"
MARGIN_SECONDS = 2


PEOPLE_STREAMS = ("customers", "guests")


def write_demo_config(shop_url: str, state_url: str, api_url: str, token: str, path: Path,
                      margin_seconds: float = MARGIN_SECONDS, people: bool = False) -> Path:
    """The shipped demo mapping pointed at the demo shop, a fresh state file and the emulator.

    With ``people`` it is the whole mapping (``altcraft-sync demo``); without, the orders-and-catalogue
    mapping the engine's tests and the benchmark were written against: no customers or guests streams,
    orders matched by e-mail alone (so an order's record is what the benchmark's peers send too)."""
    raw = yaml.safe_load(MAPPING.read_text(encoding="utf-8"))
    if not people:
        for name in PEOPLE_STREAMS:
            raw["streams"].pop(name, None)
        raw["streams"]["orders"]["matching"] = {"mode": "email", "columns": {"email": "email"}}
    raw["source"]["url"] = shop_url
    raw["source"]["safety_margin_seconds"] = margin_seconds  # the demo changes rows and re-runs at once
    raw["state"]["url"] = state_url
    raw["altcraft"]["api_url"] = api_url
    raw["altcraft"]["token"] = token
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


