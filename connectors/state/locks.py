"""One runner per stream: the stream locks, and how a dead owner is told from a live one."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from altcraft_sync.errors import StreamLocked
from connectors.state.base import StoreBase, _aware, _retried, now
from connectors.state.schema import locks


class StreamLocks(StoreBase):
    """Take and release a stream's lock; a dead holder's lock is taken over."""

    def acquire_lock(self, stream: str, owner: str, wait_seconds: float = 0) -> None:
        """Take the stream's lock; with ``wait_seconds``, wait for a live holder to finish first."""
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                return self._try_lock(stream, owner)
            except StreamLocked:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(5.0, max(0.05, deadline - time.monotonic())))

    @_retried("stream lock")
    def _try_lock(self, stream: str, owner: str) -> None:
        """Take the stream's lock, or raise ``StreamLocked``.

        A held lock is taken over when its run is dead: its process is gone on this host (owners are
        ``run@host:pid``), or it has not been refreshed (every chunk commit refreshes it) for
        ``stale_lock_seconds``."""
        ts = now()
        stale_before = ts - timedelta(seconds=self.settings.stale_lock_seconds)
        with self.engine.begin() as conn:
            conn.execute(locks.delete().where(locks.c.stream == stream, locks.c.acquired_at < stale_before))
            held = conn.execute(sa.select(locks.c.owner).where(locks.c.stream == stream)).scalar()
            if held is not None and _owner_is_dead(held):
                conn.execute(locks.delete().where(locks.c.stream == stream, locks.c.owner == held))
            try:
                with conn.begin_nested():  # a refused insert must not abort the transaction (PostgreSQL)
                    conn.execute(locks.insert().values(stream=stream, owner=owner, acquired_at=ts))
            except IntegrityError:
                held = conn.execute(sa.select(locks.c.owner, locks.c.acquired_at).where(locks.c.stream == stream)).first()
                who = f"{held.owner} since {_aware(held.acquired_at):%Y-%m-%d %H:%M:%S} UTC" if held else "another run"
                raise StreamLocked(f"stream {stream!r} is being synced by {who}; runs of one stream never overlap") from None

    @_retried("lock release")
    def release_lock(self, stream: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(locks.delete().where(locks.c.stream == stream, locks.c.owner == owner))


_ABANDONED: set[str] = set()
"""Owners (``run@host:pid``) in this process whose run ended without being able to release its lock or
close its run row (the state database failed at the end). The process is alive, so only this set tells a
later run in the same process (a worker, a test) that the owner is gone."""


def lock_owner(run_id: str) -> str:
    """``run@host:pid``: lets a later run on the same host see that a crashed owner is gone."""
    return f"{run_id}@{socket.gethostname()}:{os.getpid()}"


def abandon(owner: str) -> None:
    """Mark ``owner``'s run as ended although its lock or run row could not be written."""
    _ABANDONED.add(owner)


def _owner_is_dead(owner: str) -> bool:
    if owner in _ABANDONED:
        return True
    _, _, where = owner.rpartition("@")
    host, _, pid = where.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's run: only the stale timeout can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
