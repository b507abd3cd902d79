"""Test scaffolding: a small demo shop, its config pointed at the emulator, and a way to run streams."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from altcraft_sync.config import Config, load_config
from flows.engine import StreamStats, Syncer
from flows.runtime import open_runtime
from sandbox import demo_shop
from sandbox.demo import write_demo_config

STREAMS = ["categories", "products", "skus", "orders"]


def db_now(engine: sa.Engine) -> datetime:
    """The shop database's clock as naive UTC (the demo schema's convention)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            value = conn.execute(sa.text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar()
            return datetime.fromisoformat(value)
        if engine.dialect.name in ("mysql", "mariadb"):
            return conn.execute(sa.text("SELECT UTC_TIMESTAMP(6)")).scalar()
        return conn.execute(sa.text("SELECT CURRENT_TIMESTAMP")).scalar().astimezone(UTC).replace(tzinfo=None)


def build_shop(url: str, orders: int = 300, seed: int = 7) -> sa.Engine:
    engine = sa.create_engine(url)
    demo_shop.metadata.drop_all(engine)
    demo_shop.generate(engine, orders, seed=seed, now=db_now(engine))
    return engine


def shop_config(tmp: Path, shop_url: str, emulator: Any, token: str, **source: Any) -> Path:
    path = write_demo_config(shop_url, f"sqlite:///{tmp}/state.db", emulator.url, token, tmp / "config.yaml",
                             margin_seconds=0)
    if source:
        import yaml

        raw = yaml.safe_load(path.read_text())
        raw["source"].update(source)
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_all(config: Config | Path, streams: list[str] = STREAMS, **kw: Any) -> dict[str, StreamStats]:
    cfg = config if isinstance(config, Config) else load_config(config)
    rt = open_runtime(cfg, need_client=not kw.get("dry_run", False))
    try:
        syncer = Syncer(cfg, rt.source, rt.state, rt.client, run_id=kw.pop("run_id", "test-run"), **kw)
        syncer.define()
        return {s: syncer.sync_stream(s) for s in streams}
    finally:
        rt.close()


def just_before(engine: sa.Engine, seconds: float = 1.0) -> datetime:
    return db_now(engine) - timedelta(seconds=seconds)
