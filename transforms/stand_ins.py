"""Stand-ins: what Altcraft needs to accept an order naming a product that will never reach it.

A product the shop deleted (soft or hard) or that Altcraft refused for good can still be named by orders
(years of orders name discontinued items). Whether Altcraft accepts an order line naming an unknown product
is not documented (api.md §2.1 says the product "probably has to exist"), so before such an order goes out
an unavailable product is made of what the shop still holds: the order line's own name for it (the
orders' ``lines.product_name``), the line's final price and the order's currency. It is a product, not a
SKU: a SKU needs its product's id, which an order line does not carry, and api.md lets a line name either.
Pure: the engine decides which references need one and sends them before the order."""

from __future__ import annotations

import hashlib

import orjson
import pyarrow as pa

from transforms.payload import Mapped, Payload

STANDS_FOR = frozenset({"product", "sku"})
"""The entities a stand-in takes the place of (an order line names a product or a SKU)."""
IMPORT_METHOD = "market/products/import"
"""Stand-ins are products (api.md §1: products/import)."""
ENTITY = "stand_in"
"""The ledger entity of stand-ins: kept apart from ``product`` so the catalogue streams (their deletes,
reconcile, full passes) never touch them."""


def stand_ins(mapped: Mapped, wanted: set[str]) -> list[Payload]:
    """One unavailable product per id in ``wanted``, from the first line of this chunk naming it (its
    name, else the id itself; its final price and its order's currency when present)."""
    if not wanted or mapped.refs is None:
        return []
    refs = mapped.refs.values.to_pylist()
    details = mapped.ref_lines
    names = details.names.to_pylist() if details is not None else [None] * len(refs)
    prices = details.prices.to_pylist() if details is not None else [None] * len(refs)
    currencies = details.currencies.to_pylist() if details is not None else [None] * len(refs)
    out: dict[str, Payload] = {}
    for ref, name, price, currency in zip(refs, names, prices, currencies):
        if ref is None or ref not in wanted or ref in out:
            continue
        record = {"external_id": ref, "name": (name or "").strip() or ref, "is_available": False}
        if price is not None:
            record["price"] = price
        if currency:
            record["currency"] = currency
        data = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        out[ref] = Payload(ref, data, hashlib.blake2b(data, digest_size=16).hexdigest(), None)
    return list(out.values())


def refs_by_payload(mapped: Mapped) -> list[list[str]]:
    """Each payload's references as a list (for the few payloads a waiting decision looks at)."""
    if mapped.refs is None:
        return [[] for _ in mapped.payloads]
    values: pa.Array = mapped.refs.values
    offsets = mapped.refs.offsets.tolist()
    flat = values.to_pylist()
    return [[r for r in flat[offsets[i]:offsets[i + 1]] if r is not None] for i in range(len(offsets) - 1)]
