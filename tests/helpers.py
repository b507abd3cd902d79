"""Test scaffolding: a small demo shop, its config pointed at the emulator, and a way to run streams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from altcraft_sync.config import Config, load_config
from engine.coordinator import StreamStats, Syncer
from runner.runtime import open_runtime
from sandbox import demo_shop
from sandbox.demo import write_demo_config

STREAMS = ["categories", "products", "skus", "orders"]
PEOPLE_STREAMS = ["customers", "guests"]
ALL_STREAMS = ["categories", "products", "skus", *PEOPLE_STREAMS, "orders"]
SERVER_URLS = {"postgresql": "SHOP_TEST_PG_URL", "mysql": "SHOP_TEST_MYSQL_URL"}


def shop_url_for(dialect: str, tmp: Path) -> str:
    """A shop database URL of ``dialect``: a SQLite file under ``tmp``, or the test server's URL from the
    environment (the test is skipped, saying why, when it is not set)."""
    import os

    import pytest

    if dialect == "sqlite":
        return f"sqlite:///{tmp}/shop.db"
    url = os.environ.get(SERVER_URLS[dialect])
    if not url:
        pytest.skip(f"{dialect}: set {SERVER_URLS[dialect]} (bash .ci/services.sh starts a server) to run against it")
    return url


def db_now(engine: sa.Engine) -> datetime:
    """The shop database's clock as naive UTC (the demo schema's convention)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            value = conn.execute(sa.text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar()
            return datetime.fromisoformat(value)
        if engine.dialect.name in ("mysql", "mariadb"):
            return conn.execute(sa.text("SELECT UTC_TIMESTAMP(6)")).scalar()
        return conn.execute(sa.text("SELECT CURRENT_TIMESTAMP")).scalar().astimezone(UTC).replace(tzinfo=None)


def build_shop(url: str, orders: int = 300, seed: int = 7, people: bool = False) -> sa.Engine:
    engine = sa.create_engine(url)
    demo_shop.metadata.drop_all(engine)
    demo_shop.generate(engine, orders, seed=seed, now=db_now(engine), people=people)
    return engine


def shop_config(tmp: Path, shop_url: str, emulator: Any, token: str, failure_threshold: float = 0.5,
                map_workers: int = 0, people: bool = False, failure_floor: int | None = None,
                **source: Any) -> Path:
    """The demo mapping for a test shop. Small test shops have a high share of the planted invalid rows,
    so the failure threshold is raised unless a test is about it. Chunks are mapped in-process unless a
    test asks for map workers (starting one costs seconds, and small chunks would start them).

    Without ``people`` it is the orders-and-catalogue mapping (:func:`sandbox.demo.write_demo_config`)."""
    import yaml

    path = write_demo_config(shop_url, f"sqlite:///{tmp}/state.db", emulator.url, token, tmp / "config.yaml",
                             margin_seconds=0, people=people)
    raw = yaml.safe_load(path.read_text())
    raw["source"].update(source)
    raw["sync"]["failure_threshold"] = failure_threshold
    raw["sync"]["map_workers"] = map_workers
    if failure_floor is not None:
        raw["sync"]["failure_floor"] = failure_floor
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_all(config: Config | Path, streams: list[str] = STREAMS, **kw: Any) -> dict[str, StreamStats]:
    cfg = config if isinstance(config, Config) else load_config(config)
    rt = open_runtime(cfg, need_client=not kw.get("dry_run", False))
    try:
        with Syncer(cfg, rt.source, rt.state, rt.client, run_id=kw.pop("run_id", "test-run"), **kw) as syncer:
            return {s: syncer.sync_stream(s) for s in streams}
    finally:
        rt.close()


def just_before(engine: sa.Engine, seconds: float = 1.0) -> datetime:
    return db_now(engine) - timedelta(seconds=seconds)


def run_artifacts(flow_run_id: Any) -> list[dict[str, Any]]:
    """Artifacts of one flow run, read back through the Prefect API (as dicts)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read() -> list[dict[str, Any]]:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
            return [a.model_dump(mode="json") for a in found]

    return asyncio.run(read())


def mapped_source(config_path: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Every valid, live record the source holds, mapped independently of any run (the expected state)."""
    from connectors.shop_db import ShopSource
    from transforms.catalog import map_catalog, map_categories
    from transforms.orders import map_orders
    from transforms.spec import mapping_spec

    cfg = config_path if isinstance(config_path, Config) else load_config(config_path)
    src = ShopSource(cfg)
    src.bind()
    try:
        out = {}
        frames = {s: next(src.read_changes(s, None, src.upper_bound(s, -3600), 10**7))[0] for s in STREAMS}
        out["categories"] = map_categories(frames["categories"], mapping_spec(cfg, "categories"))
        out["products"] = map_catalog(frames["products"], None, mapping_spec(cfg, "products"))
        skus = frames["skus"]
        out["skus"] = map_catalog(
            skus, src.fetch_by_keys("skus.regional", skus["_pk"].tolist(), by_parent=True), mapping_spec(cfg, "skus")
        )
        orders = frames["orders"]
        out["orders"] = map_orders(
            orders, src.fetch_by_keys("orders.lines", orders["_pk"].tolist(), by_parent=True), mapping_spec(cfg, "orders")
        )
    finally:
        src.close()
    return {k: {r["external_id"]: r for r in m.records()} for k, m in out.items()}


def deliverable_orders(config_path: Any, n: int) -> list[int]:
    """The ``n`` lowest ids of orders the mapping delivers. The demo shop plants its invalid orders where
    the generator's draw puts them, so a test that needs orders Altcraft will take picks them by that
    property, never by a fixed id."""
    ids = sorted(int(k) for k in mapped_source(config_path)["orders"])
    assert len(ids) >= n, f"the test shop has {len(ids)} deliverable orders, the test needs {n}"
    return ids[:n]


def orders_down_after(emulator: Any, n_imports: int) -> Any:
    """Make Altcraft answer 503 to every orders import after the first ``n_imports``; returns the original
    handler so a test can bring it back."""
    original, calls = emulator.handle, {"n": 0}

    def handle(method: str, body: dict[str, Any], bearer: str | None) -> dict[str, Any]:
        if method == "market/orders/import" and body.get("data"):
            calls["n"] += 1
            if calls["n"] > n_imports:
                return {"error": 503, "error_text": "maintenance"}
        return original(method, body, bearer)

    emulator.handle = handle
    return original


class KilledBeforeCommit(Exception):
    """Stands for the process dying between Altcraft's answer and a chunk's state commit."""


def orders_run_killed_before_its_commit(config: Config, monkeypatch: Any) -> None:
    """Run the orders stream with every chunk commit (outcomes and a cursor) dying, as a run killed after
    Altcraft answered and before the commit; the real commit is back afterwards."""
    import pytest

    from connectors.state import StateStore

    real = StateStore.commit_chunk

    def dying(store: StateStore, **kw: Any) -> None:
        if kw.get("entries") and kw.get("cursors"):  # a chunk's commit (not the definitions' carrier)
            raise KilledBeforeCommit("killed after Altcraft answered, before the commit")
        return real(store, **kw)

    monkeypatch.setattr(StateStore, "commit_chunk", dying)
    with pytest.raises(KilledBeforeCommit):
        run_all(config, streams=["orders"])
    monkeypatch.setattr(StateStore, "commit_chunk", real)


def orders_behind(state: Any, conn: sa.Connection, first_sync_order: str) -> list[str]:
    """The demo shop's order ids at or behind where the state says a stopped first sync of orders stands:
    the watermark's ``(updated_at, id)`` when it read in cursor order; the key position's id when it read
    in key order (which leaves no watermark until its last page)."""
    from engine.planner import key_position

    if first_sync_order == "cursor":
        wm = state.get_watermark("orders", "orders")
        assert wm is not None
        rows = conn.execute(sa.text("SELECT id FROM orders WHERE updated_at < :t OR (updated_at = :t AND id <= :p)"),
                            {"t": wm.ts, "p": wm.pk})
    else:
        assert state.get_watermark("orders", "orders") is None
        position = state.get_watermark("orders", key_position("orders"))
        assert position is not None
        rows = conn.execute(sa.text("SELECT id FROM orders WHERE id <= :p"), {"p": position.pk})
    return [str(r[0]) for r in rows]
