"""The stream names flow parameters take. Everything else about a stream is its spec
(:mod:`altcraft_sync.streams`); this Literal only lets the Prefect UI offer the built-in streams as a choice
(a test keeps it equal to ``altcraft_sync.streams.BUILT_IN``)."""

from __future__ import annotations

from typing import Literal

StreamName = Literal["categories", "products", "skus", "customers", "guests", "orders"]
