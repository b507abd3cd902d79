"""The one place a chunk reaches the state store, and the one writer of watermarks.

Every outcome the engine records (a pipeline chunk, a carrier with its definitions, reconcile's deletes,
verify's repairs) goes through :meth:`Committer.commit`: one transaction holds the chunk's ledger entries,
its quarantine changes, the cursor's new position (only when it moved) and the lock heartbeat. A dry run
commits nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from altcraft_sync import streams as registry
from altcraft_sync.cursor import Cursor
from altcraft_sync.wording import plural
from connectors.state import LedgerEntry
from engine.context import RunContext
from engine.decide import Quarantined


class Committer:
    """``commit`` a chunk; ``start`` tells it where a cursor stands before it is read."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def start(self, cursor_name: str, committed: Cursor | None) -> None:
        """Where ``cursor_name`` stands in the state before it is read (its watermark, or None)."""
        self.ctx.memory.positions[cursor_name] = committed

    def commit(self, stream: str, *, entries: Sequence[LedgerEntry] = (), quarantined: Sequence[Quarantined] = (),
               cleared: Sequence[tuple[str, str]] = (), cursor: tuple[str, Cursor | None] | None = None,
               settle: Sequence[str] = (), digests: Mapping[tuple[str, str], int] | None = None,
               redigested: Sequence[tuple[str, str, int]] = (), seen_invalid: Sequence[tuple[str, str]] = (),
               forgotten: Sequence[str] = ()) -> None:
        """Record a chunk in one transaction, then drop the in-flight notes of its ``settle`` batches (after
        the commit, not in it: a note left by a crash in between names records the ledger already has).
        ``digests``, ``redigested``, ``seen_invalid``: what the raw-row digests of the chunk's records
        leave to write (``commit_chunk``). ``forgotten``: cursor rows to delete in the same transaction."""
        ctx = self.ctx
        if ctx.dry_run:
            return
        moved = self._moved(cursor)
        ctx.state.commit_chunk(stream=stream, cursors=moved, entries=entries, quarantined=quarantined,
                               cleared=cleared, run_id=ctx.run_id, lock_owner=ctx.owner, digests=digests,
                               redigested=redigested, seen_invalid=seen_invalid, forgotten=forgotten)
        if settle:
            ctx.state.settle(list(settle))
        ctx.log.debug("%s: committed %s, %s; %s", stream, plural(len(entries), "ledger entry", "ledger entries"),
                      plural(len(quarantined), "record") + " quarantined", _cursor_text(stream, cursor, moved))

    def _moved(self, cursor: tuple[str, Cursor | None] | None) -> dict[str, Cursor] | None:
        """The cursor to write, or None when it is where the state already has it (a lookback re-read of
        unchanged rows): a watermark is rewritten only when it moves. Called in chunk order."""
        if cursor is None:
            return None
        name, position = cursor
        positions = self.ctx.memory.positions
        if position is None or positions.get(name) == position:
            return None
        positions[name] = position
        return {name: position}


def _cursor_text(stream: str, cursor: tuple[str, Cursor | None] | None, moved: dict[str, Cursor] | None) -> str:
    """Where the chunk left its cursor, for the debug log (the watermark ``status`` shows, no record data)."""
    if not moved:
        return "cursor unchanged" if cursor is not None else "no cursor"
    name, position = next(iter(moved.items()))
    key = registry.get(stream).shown_key(position.pk)
    return f"cursor {name} at {position.ts}" + ("" if key is None else f" / {key}")
