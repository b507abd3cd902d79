"""The vocabulary shared by the engine's parts: which entity each stream syncs and what its records refer to."""

from __future__ import annotations

from typing import Literal

ENTITY = {"categories": "category", "products": "product", "skus": "sku", "orders": "order"}
"""Stream -> the ledger entity of its records."""
ENTITY_STREAM = {e: s for s, e in ENTITY.items()}
DEPENDS_ON = {"orders": ("skus", "products"), "skus": ("products",), "products": ("categories",)}
"""What a stream's records refer to (an order line's product may be a SKU or a product), in lookup order."""
DEPENDED_ON = frozenset(ENTITY[s] for deps in DEPENDS_ON.values() for s in deps)

StreamName = Literal["categories", "products", "skus", "orders"]
"""A stream as flow parameters take it (the Prefect UI offers the four)."""
