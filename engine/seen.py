"""The external ids a full read of a stream has seen, kept on disk: a stream without ``updated_at`` is read
whole every run, and what the pass never sees has left the source. Holding those ids in memory would make
the pass O(table) in memory; a throwaway SQLite file beside nothing (the temp directory) keeps it O(chunk):
each chunk's ids are inserted once, and the ledger's delivered ids are looked up against it by batch."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable

from altcraft_sync.batching import batched


class SeenIds:
    """A set of strings on disk, for one pass: ``add`` per chunk, ``missing`` per batch, ``close`` at the end."""

    def __init__(self) -> None:
        fd, self._path = tempfile.mkstemp(prefix="altcraft-sync-seen-", suffix=".db")
        os.close(fd)
        self._db = sqlite3.connect(self._path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY) WITHOUT ROWID")
        self.count = 0

    def add(self, ids: Iterable[str]) -> None:
        cur = self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((i,) for i in ids))
        self.count += max(cur.rowcount, 0)

    def missing(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` the pass never saw (in batches of 500: SQLite's parameter limit)."""
        out: list[str] = []
        for part in batched(ids, 500):
            found = {r[0] for r in self._db.execute(
                f"SELECT id FROM seen WHERE id IN ({','.join('?' * len(part))})", part)}
            out += [i for i in part if i not in found]
        return out

    def __contains__(self, external_id: object) -> bool:
        return self._db.execute("SELECT 1 FROM seen WHERE id = ?", (external_id,)).fetchone() is not None

    def close(self) -> None:
        self._db.close()
        try:
            os.unlink(self._path)
        except OSError:
            pass
