"""The run history (one row a run, figures per stream) and a backfill's per-window progress."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from altcraft_sync.masking import mask_optional, mask_tree
from connectors.state.base import StoreBase, _aware, _retried, now
from connectors.state.locks import _owner_is_dead, lock_owner
from connectors.state.schema import backfill_windows, run_streams, runs


class RunHistory(StoreBase):
    """Runs as they start and end (a dead run's row is closed by the next), and backfill windows."""

    @_retried("run start")
    def start_run(self, run_id: str, kind: str) -> None:
        """Record a run as running, its owner in ``message`` until it ends. Runs left ``running`` by an
        owner that is gone (killed, or its state database failed when it ended) are closed as failed
        first, so the history never shows a dead run as running."""
        with self.engine.begin() as conn:
            left = conn.execute(sa.select(runs.c.run_id, runs.c.message).where(runs.c.status == "running")).all()
            for r in left:
                if r.message and _owner_is_dead(r.message):
                    conn.execute(runs.update().where(runs.c.run_id == r.run_id).values(
                        status="failed", ended_at=now(),
                        message="interrupted: the run ended without recording its outcome"))
            conn.execute(runs.insert().values(run_id=run_id, kind=kind, started_at=now(), status="running",
                                              message=lock_owner(run_id)))

    @_retried("run end")
    def finish_run(self, run_id: str, status: str, message: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(
                ended_at=now(), status=status, message=mask_optional(message)))

    @_retried("run figures")
    def record_stream(self, run_id: str, stream: str, figures: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            self._upsert(
                conn,
                run_streams,
                [{"run_id": run_id, "stream": stream,
                  "figures": orjson.dumps(mask_tree(figures), default=str).decode()}],
                ["run_id", "stream"],
                ["figures"],
            )

    @_retried("run history read")
    def last_runs(self, n: int = 10) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.started_at.desc()).limit(n)).all()
            ids = [r.run_id for r in rows]
            streams = conn.execute(sa.select(run_streams).where(run_streams.c.run_id.in_(ids))).all() if ids else []
        by_run: dict[str, dict[str, Any]] = {}
        for s in streams:
            by_run.setdefault(s.run_id, {})[s.stream] = orjson.loads(s.figures)
        return [{**r._asdict(), "started_at": _aware(r.started_at), "ended_at": _aware(r.ended_at),
                 "streams": by_run.get(r.run_id, {})} for r in rows]

    # --- backfill progress -------------------------------------------------------------------------
    @_retried("backfill read")
    def window_status(self, backfill_id: str, stream: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(backfill_windows.c.window_start, backfill_windows.c.status)
                .where(backfill_windows.c.backfill_id == backfill_id, backfill_windows.c.stream == stream)
            ).all()
        return {r.window_start: r.status for r in rows}

    @_retried("backfill progress")
    def mark_window(self, backfill_id: str, stream: str, start: str, end: str, status: str,
                    figures: dict[str, Any] | None = None) -> None:
        with self.engine.begin() as conn:
            self._upsert(conn, backfill_windows, [{
                "backfill_id": backfill_id, "stream": stream, "window_start": start, "window_end": end,
                "status": status, "figures": orjson.dumps(figures or {}, default=str).decode(), "updated_at": now(),
            }], ["backfill_id", "stream", "window_start"], ["window_end", "status", "figures", "updated_at"])

    @_retried("backfill reset")
    def reset_backfill(self, backfill_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(backfill_windows.delete().where(backfill_windows.c.backfill_id == backfill_id))
