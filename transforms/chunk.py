"""One entry point for mapping a chunk of any stream: what the engine calls in-process and what a map worker
process runs. Pure, like every transform: frames and a :class:`~transforms.spec.MappingSpec` in,
:class:`Mapped` out. Which mapper a stream uses is its spec's ``mapper`` (:mod:`altcraft_sync.streams`);
the adapters below give the built-in ones the common signature ``(parents, children, mapping)``."""

from __future__ import annotations

import pandas as pd

from altcraft_sync import streams as registry
from transforms.catalog import map_categories
from transforms.orders import map_orders
from transforms.payload import Mapped
from transforms.profiles import map_profiles
from transforms.spec import MappingSpec


def map_chunk(parents: pd.DataFrame, children: pd.DataFrame | None, m: MappingSpec) -> Mapped:
    """Map + validate + encode one chunk of ``m.stream`` (parents with all of their children)."""
    mapped: Mapped = registry.get(m.stream).map_function()(parents, children, m)
    return mapped


def orders(parents: pd.DataFrame, children: pd.DataFrame | None, m: MappingSpec) -> Mapped:
    """Orders with their lines (a mapped orders stream always has a lines table)."""
    assert children is not None, f"{m.stream}: orders are mapped with their lines"
    return map_orders(parents, children, m)


def categories(parents: pd.DataFrame, children: pd.DataFrame | None, m: MappingSpec) -> Mapped:
    """Categories (no children), ordered parents first."""
    return map_categories(parents, m)


def profiles(parents: pd.DataFrame, children: pd.DataFrame | None, m: MappingSpec) -> Mapped:
    """People (no children) as Altcraft profiles."""
    return map_profiles(parents, m)
