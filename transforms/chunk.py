"""One entry point for mapping a chunk of any stream: what the engine calls in-process and what a map worker
process runs. Pure, like every transform: frames and config in, :class:`Mapped` out."""

from __future__ import annotations

import pandas as pd

from altcraft_sync.config import Config
from transforms.catalog import map_catalog, map_categories
from transforms.orders import map_orders
from transforms.payload import Mapped


def map_chunk(stream: str, parents: pd.DataFrame, children: pd.DataFrame | None, config: Config) -> Mapped:
    """Map + validate + encode one chunk of ``stream`` (parents with all of their children)."""
    if stream == "orders":
        assert children is not None
        return map_orders(parents, children, config)
    if stream == "categories":
        return map_categories(parents, config)
    return map_catalog(parents, children, config, stream)
