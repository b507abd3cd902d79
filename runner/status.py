"""``status``, ``check`` and ``quarantine``: what a person asks before and after a run. No Prefect needed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from altcraft_sync import streams as registry
from altcraft_sync.config import Config, StateSettings, load_config, resolve_token
from altcraft_sync.cursor import to_utc
from altcraft_sync.errors import SyncError
from connectors.altcraft import AltcraftClient
from connectors.shop_db import ShopSource
from connectors.state import StateStore
from connectors.state.base import missing_state_file
from engine.planner import is_key_position
from runner.outcome import backlog_line
from runner.runtime import confirm_token


def asked_now(settings: StateSettings) -> StateSettings:
    """The state settings for a command a person waits on (status, quarantine, check): one attempt, so an
    unreachable state database is one line in seconds, not eight attempts over ~40 s (a run keeps its
    retries: it rides out a restarting server)."""
    return settings.model_copy(update={"retry": settings.retry.model_copy(update={"max_attempts": 1})})


def state_not_created(settings: StateSettings) -> str | None:
    """Why there is no state to look at, when ``state.url`` names a SQLite file that does not exist yet:
    opening it would create it empty, so a command that only looks reports this instead (a typo in
    ``state.url`` must not read as "nothing quarantined, nothing rejected")."""
    fresh = missing_state_file(settings)
    if fresh is None:
        return None
    return f"state database {settings.display_url()}: {fresh} does not exist yet"


_NOT_SYNCED = "no sync has recorded anything with this state.url (if this shop was synced before, check state.url)"


def collect_status(config_path: str | Path) -> dict[str, Any]:
    """Watermarks and lag per stream cursor, backlog per entity, last runs. The source is optional:
    when it cannot be reached, lag is unknown and the error is reported alongside. A state file that does
    not exist is not created: the report has no watermarks and says so in ``state_note``."""
    cfg = load_config(config_path)
    missing = state_not_created(cfg.state)
    state = None if missing else StateStore(asked_now(cfg.state))
    source: ShopSource | None = None
    source_error = None
    try:
        source = ShopSource(cfg)  # a missing SQLite file is refused here
        source.bind()
    except SyncError as err:
        if source is not None:
            source.close()
        source_error, source = str(err), None
    try:
        marks, summary, (line, alert), runs = _held(state, cfg)
        rows = []
        # without the source, the state's own cursors (a first sync's key position is not one)
        names = list(source.entities) if source else sorted({c for _, c in marks if not is_key_position(c)})
        for cursor in names:
            stream = cursor.split(".")[0]
            wm = marks.get((stream, cursor))
            newest = to_utc(source.max_cursor_ts(cursor), source.tz) if source else None
            wm_time = wm[0].as_datetime(source.tz if source else _utc()) if wm else None
            lag = max(0.0, (newest - wm_time).total_seconds()) if newest and wm_time else None
            pk = wm[0].pk if wm else None
            if (spec := registry.find(stream)) is not None:
                pk = spec.shown_key(pk)  # a guest is keyed by an e-mail or a phone
            rows.append({"stream": stream, "cursor": cursor, "watermark": wm_time, "watermark_pk": pk,
                         "source_newest": newest, "lag_seconds": lag, "checkpointed_at": wm[1] if wm else None})
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
        return {"streams": rows, "backlog": backlog, "backlog_line": line, "backlog_alert": alert,
                "runs": runs, "source_error": source_error,
                "state_note": f"{missing}: {_NOT_SYNCED}" if missing else None}
    finally:
        if state:
            state.close()
        if source:
            source.close()


def _held(state: StateStore | None, cfg: Config) -> tuple[Any, dict[str, Any], tuple[str | None, bool], list[Any]]:
    """What the state holds for ``status``: watermarks, the ledger's summary, the backlog line and the last
    runs; nothing at all without a state database."""
    if state is None:
        return {}, {"ledger": {}, "quarantine": {}}, (None, False), []
    return (state.all_watermarks(), state.summary(), backlog_line(state.backlog(), cfg.sync, datetime.now(UTC)),
            state.last_runs(10))


def _utc() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("UTC")




def collect_problems(config_path: str | Path, *, stream: str | None = None, reason: str | None = None,
                     limit: int = 100, on_note: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Records that are not in Altcraft as the shop has them, from the state database alone: quarantined
    (failed the contract: every check with its field and value), rejected or failed (Altcraft's code and
    text) and deferred (what they wait for). ``reason`` keeps rows whose reason contains it (any case).
    E-mail and phone values are masked. Newest first. A state file that does not exist is not created:
    no rows, and ``on_note`` is told why."""
    from runner.reporting import mask

    if stream is not None and registry.find(stream) is None:
        raise SyncError(f"--stream {stream}: not a stream (one of {', '.join(registry.names())})")
    entity = registry.get(stream).entity if stream else None
    cfg = load_config(config_path)
    if (missing := state_not_created(cfg.state)) is not None:
        if on_note is not None:
            on_note(f"{missing}: {_NOT_SYNCED}")
        return []
    state = StateStore(asked_now(cfg.state))
    try:
        rows = [{"kind": "quarantined", "entity": r["entity"], "external_id": r["external_id"],
                 "source_pk": r["source_pk"], "at": r["last_seen"],
                 "reasons": [{"field": x.get("field"), "check": x.get("check"), "value": x.get("value")}
                             for x in r["reasons"]]}
                for r in state.quarantine_rows(entity=entity)]
        rows += [{"kind": r["status"], "entity": r["entity"], "external_id": r["external_id"],
                  "source_pk": r["source_pk"], "at": r["updated_at"],
                  "reasons": [{"field": None, "check": f"Altcraft {r['error_code']}" if r["error_code"] else r["status"],
                               "value": r["error_text"]}]}
                 for r in state.rejected_rows(entity=entity)]
    finally:
        state.close()
    if reason:
        needle = reason.lower()
        rows = [r for r in rows if any(needle in f"{x['field']} {x['check']} {x['value']}".lower() for x in r["reasons"])]
    rows.sort(key=lambda r: str(r["at"]), reverse=True)
    return [mask(r) for r in rows[:limit]]


def run_checks(config_path: str | Path) -> list[tuple[str, str | None]]:
    """Each check with ``None`` when it passed or the one-line problem; stops at the first that makes
    the rest meaningless (no config)."""
    results: list[tuple[str, str | None]] = []
    try:
        cfg = load_config(config_path)
    except SyncError as err:
        return [("config", str(err))]
    results.append((f"config {config_path}", None))
    try:
        source = ShopSource(cfg)  # a missing SQLite file is refused here, before any connection
    except SyncError as err:
        results.append(("shop database", str(err)))
    else:
        try:
            warnings = source.bind()
            source.probe_reads()
            source.check_values()
            results.append((f"shop database {source.display_url} matches the mapping", None))
            results += [(f"warning: {w}", None) for w in warnings]
        except SyncError as err:
            results.append(("shop database", str(err)))
        finally:
            source.close()
    missing = state_not_created(cfg.state)
    if missing is not None:  # a typo in state.url would otherwise pass, and the next sync would send everything
        results.append((f"warning: {missing}; the first sync creates it and, with no state, sends every record "
                        "(if this shop was synced before, check state.url)", None))
    else:
        try:
            StateStore(asked_now(cfg.state)).close()
            results.append((f"state database {cfg.state.display_url()}", None))
        except SyncError as err:
            results.append(("state database", str(err)))
    try:
        # one attempt: a check answers in seconds whether Altcraft is reachable, it does not wait it out
        client = AltcraftClient(cfg.altcraft.model_copy(update={"max_attempts": 1}), resolve_token(cfg.altcraft))
        try:
            confirm_token(client)
        finally:
            client.close()
        results.append((f"Altcraft {cfg.altcraft.api_url} accepts the token", None))
    except SyncError as err:
        results.append(("Altcraft", str(err)))
    return results
