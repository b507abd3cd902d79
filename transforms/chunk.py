"""One entry point for mapping a chunk of any stream: what the engine calls in-process and what a map worker
process runs. Pure, like every transform: frames and config in, :class:`Mapped` out. Which mapper a stream
uses is its spec's ``mapper`` (:mod:`altcraft_sync.streams`); the adapters below give the built-in ones the
common signature ``(parents, children, config, stream)``."""

from __future__ import annotations

import pandas as pd

from altcraft_sync import streams as registry
from altcraft_sync.config import Config
from transforms.catalog import map_categories
from transforms.orders import map_orders
from transforms.payload import Mapped


def map_chunk(stream: str, parents: pd.DataFrame, children: pd.DataFrame | None, config: Config) -> Mapped:
    """Map + validate + encode one chunk of ``stream`` (parents with all of their children)."""
    mapped: Mapped = registry.get(stream).map_function()(parents, children, config, stream)
    return mapped


def orders(parents: pd.DataFrame, children: pd.DataFrame | None, config: Config, stream: str) -> Mapped:
    """Orders with their lines (a mapped orders stream always has a lines table)."""
    assert children is not None, f"{stream}: orders are mapped with their lines"
    return map_orders(parents, children, config)


def categories(parents: pd.DataFrame, children: pd.DataFrame | None, config: Config, stream: str) -> Mapped:
    """Categories (no children), ordered parents first."""
    return map_categories(parents, config)
