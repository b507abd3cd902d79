"""``status`` and ``check``: what a person asks before and after a run. No Prefect needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from altcraft_sync.config import load_config, resolve_token
from altcraft_sync.errors import SyncError
from connectors.altcraft import AltcraftClient
from connectors.shop_db import ShopSource, to_utc
from connectors.state import StateStore


def collect_status(config_path: str | Path) -> dict[str, Any]:
    """Watermarks and lag per stream cursor, backlog per entity, last runs. The source is optional:
    when it cannot be reached, lag is unknown and the error is reported alongside."""
    cfg = load_config(config_path)
    state = StateStore(cfg.state)
    source: ShopSource | None = ShopSource(cfg)
    source_error = None
    try:
        source.bind()
    except SyncError as err:
        source_error, source = str(err), None
    try:
        marks = state.all_watermarks()
        rows = []
        names = list(source.entities) if source else sorted({c for _, c in marks})
        for cursor in names:
            stream = cursor.split(".")[0]
            wm = marks.get((stream, cursor))
            newest = to_utc(source.max_cursor_ts(cursor), source.tz) if source else None
            wm_time = wm[0].as_datetime(source.tz if source else _utc()) if wm else None
            lag = max(0.0, (newest - wm_time).total_seconds()) if newest and wm_time else None
            rows.append({"stream": stream, "cursor": cursor, "watermark": wm_time, "watermark_pk": wm[0].pk if wm else None,
                         "source_newest": newest, "lag_seconds": lag, "checkpointed_at": wm[1] if wm else None})
        summary = state.summary()
        entities = sorted(set(summary["ledger"]) | set(summary["quarantine"]))
        backlog = {
            e: {
                "quarantined": summary["quarantine"].get(e, 0),
                "rejected": summary["ledger"].get(e, {}).get("rejected", 0),
                "rejected_permanent": summary["ledger"].get(e, {}).get("rejected-permanent", 0),
                "failed": summary["ledger"].get(e, {}).get("failed", 0),
                "deferred": summary["ledger"].get(e, {}).get("deferred", 0),
                "delivered": summary["ledger"].get(e, {}).get("delivered", 0),
            }
            for e in entities
        }
        return {"streams": rows, "backlog": backlog, "runs": state.last_runs(10), "source_error": source_error}
    finally:
        state.close()
        if source:
            source.close()


def _utc() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("UTC")


def run_checks(config_path: str | Path) -> list[tuple[str, str | None]]:
    """Each check with ``None`` when it passed or the one-line problem; stops at the first that makes
    the rest meaningless (no config)."""
    results: list[tuple[str, str | None]] = []
    try:
        cfg = load_config(config_path)
    except SyncError as err:
        return [("config", str(err))]
    results.append((f"config {config_path}", None))
    source = ShopSource(cfg)
    try:
        warnings = source.bind()
        source.check_values()
        results.append((f"shop database {source.display_url} matches the mapping", None))
        results += [(f"warning: {w}", None) for w in warnings]
    except SyncError as err:
        results.append(("shop database", str(err)))
    finally:
        source.close()
    try:
        StateStore(cfg.state).close()
        results.append((f"state database {cfg.state.display_url()}", None))
    except SyncError as err:
        results.append(("state database", str(err)))
    try:
        client = AltcraftClient(cfg.altcraft, resolve_token(cfg.altcraft))
        try:
            next(client.list_skus(limit=1), None)
        finally:
            client.close()
        results.append((f"Altcraft {cfg.altcraft.api_url} accepts the token", None))
    except SyncError as err:
        results.append(("Altcraft", str(err)))
    return results
