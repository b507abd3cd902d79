"""The stream names flow parameters take: the registry's :data:`altcraft_sync.streams.StreamName` (everything
else about a stream is its spec)."""

from __future__ import annotations

from altcraft_sync.streams import StreamName

__all__ = ["StreamName"]
