"""A local Altcraft Market API emulator: a real HTTP server, not request mocking.

It implements the Market endpoints of ``../shared/altcraft/api.md`` so the client, the demo and every
test talk HTTP to something that behaves like Altcraft: token check (body or Bearer), per-record
validation with per-item errors in ``result[]``, upsert by ``external_id``, cursor paging, deletes,
a 10 MB body limit answered with HTTP 413, and fault injection (429 storms, 5xx, dropped connections,
latency, per-record rejections) switchable at start and at run time.

Where Altcraft's behaviour is not documented the emulator has to pick one; each such choice is marked
``INFERRED`` below and listed in the README ("Emulator: inferred behaviour"):

- INFERRED: a bad token is answered HTTP 200 with ``{"error": 401}`` in the body (the docs list body
  code 401 "API token required" and say HTTP 200 may carry an error); the client handles HTTP 401 too.
- INFERRED: per-item results carry ``error_text`` besides ``error`` and ``external_id``; per-item codes: 400
  for an invalid field, 404 for an unknown product, SKU's product, category or custom field (until it arrives).
- INFERRED: an order line's ``product`` must be a known product or SKU external_id.
- INFERRED: an invalid root ``categories``/``custom_fields``/``custom_line_statuses`` entry fails the whole
  request with ``{"error": 400, "error_text": "incorrect request: ..."}`` (they have no per-item result).
- INFERRED: ``products/import`` answers like the other imports. ``data: []`` is accepted unless the emulator
  runs with ``strict_data`` (``--strict-data``), which refuses it as api.md's "required" may mean; the
  client never relies on either reading (definitions and categories travel with a real record).
- INFERRED: list endpoints return prices as imported (major units); api.md notes a possible x100.
- INFERRED: a field of the wrong JSON type (``count`` as a string, ``lines`` not an array, ...) fails the
  whole request with error 400, as a typed (Go) decoder does; value errors (enums, required fields,
  references) are per-item. The client isolates such records by halving the batch.
- Re-importing an order replaces it whole, lines included (api.md §5: always send complete orders).
- Profiles (``profiles/*``) and the ``require_profiles`` mode: see :mod:`sandbox.emulator_profiles`.
"""

from __future__ import annotations

import gc
import hmac
import itertools
import random
import threading
import time
from collections import Counter
from typing import Any

from sandbox import emulator_profiles as profiles
from sandbox.emulator_checks import (
    DEFAULT_CURRENCIES,
    LINE_STATUSES,
    ItemError,
    RequestError,
    check_category_tree,
    check_custom_field_definition,
    check_line_status_definition,
    type_problem,
    validate_order,
    validate_product,
    validate_sku,
)
from sandbox.emulator_http import API_PREFIX, _Handler, _Server
from sandbox.emulator_store import Faults, Store

__all__ = ["AltcraftEmulator", "Faults", "Store"]


class AltcraftEmulator:
    """Run with :meth:`start` (background thread) or :meth:`serve_forever`; ``url`` is the API base URL."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "sandbox-token",
        faults: Faults | None = None,
        currencies: frozenset[str] = DEFAULT_CURRENCIES,
        require_known_products: bool = True,
        strict_data: bool = False,
        require_profiles: bool = False,
        accept_orphan_categories: bool = False,
    ) -> None:
        self.token = token
        self.require_profiles = require_profiles
        """Refuse an order whose buyer has no profile (``--require-profiles``; INFERRED, see
        :mod:`sandbox.emulator_profiles`)."""
        self.accept_orphan_categories = accept_orphan_categories
        """Take a category whose parent is neither held nor earlier in the request (``--accept-orphan-
        categories``). api.md does not say; by default the emulator refuses the request (400), the reading
        altcraft-sync is built against: it sends parents first and holds an orphan back as deferred."""
        self.strict_data = strict_data
        """Refuse an import whose ``data`` is empty (``--strict-data``): api.md marks ``data`` required, and
        whether Altcraft accepts ``data: []`` is unknown, so tests run against the strict reading."""
        self.faults = faults or Faults()
        self.currencies = set(currencies)
        self.require_known_products = require_known_products
        self.store = Store()
        self.lock = threading.RLock()
        self.stats: Counter[str] = Counter()
        self.import_counts: Counter[tuple[str, str]] = Counter()
        """(entity, external_id) -> how many times it was accepted: lets tests prove 'sent once'."""
        self.skip_triggers: dict[str, bool] = {}
        """order external_id -> the ``skip_triggers`` flag of the request that last imported it."""
        self.in_flight = 0
        self.freeze_gc = False
        self._rng = random.Random(self.faults.seed)
        self._seeded = self.faults.seed
        self._server = _Server((host, port), _Handler)
        self._server.emulator = self
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}{API_PREFIX}"

    def start(self) -> AltcraftEmulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="altcraft-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread (the ``altcraft-sync sandbox`` process). The store holds millions of
        plain dicts with no cycles: freezing them out of the cyclic GC after each import keeps collections
        from rescanning the whole store (capacity fell from ~25k to ~6.7k orders/s at 1M stored)."""
        self.freeze_gc = True
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AltcraftEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self, kinds: list[str] | None = None) -> None:
        """Forget everything, or only the records of ``kinds`` (the benchmark's peers reuse the catalog)."""
        with self.lock:
            for kind in kinds or ():
                getattr(self.store, kind).clear()  # checked by the HTTP layer
                if kind == "profiles":
                    self.store.profile_index.clear()
            if kinds is None:
                self.store = Store()
                self.stats.clear()
                self.import_counts.clear()

    # --- faults --------------------------------------------------------------------------------------
    def injected_fault(self) -> tuple[str, Any] | None:
        f = self.faults
        with self.lock:
            if f.seed != self._seeded:  # a seed set at run time restarts a reproducible fault sequence
                self._rng, self._seeded = random.Random(f.seed), f.seed
            self.stats["api_requests"] += 1
            n = self.stats["api_requests"]
            roll_drop, roll_err = self._rng.random(), self._rng.random()
            status = self._rng.choice((500, 502, 503, 504))
        if f.latency_ms:
            time.sleep(f.latency_ms / 1000)
        if f.rate_limit_every and n % f.rate_limit_every == 0:
            return ("status", (429, {"Retry-After": f"{f.retry_after:g}"}))
        if roll_drop < f.drop_rate:
            return ("drop", None)
        if roll_err < f.error_rate:
            return ("status", (status, {}))
        return None

    # --- API dispatch --------------------------------------------------------------------------------
    def handle(self, method: str, body: dict[str, Any], bearer: str | None) -> dict[str, Any]:
        token = bearer if bearer is not None else body.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
            return {"error": 401, "error_text": "API token required"}
        handler = _METHODS.get(method)
        if handler is None:
            return {"error": 400, "error_text": f"incorrect request: unknown method {method}"}
        if self.faults.tariff_exceeded and method.endswith("/import"):
            return {"error": 402, "error_text": "Tariff limit reached"}
        try:
            with self.lock:
                out = handler(self, body)
        except RequestError as err:
            return {"error": err.code, "error_text": err.text}
        self.stats[f"method:{method}"] += 1
        return {"error": 0, "error_text": "", **out}

    # --- root-level definitions ----------------------------------------------------------------------
    def _apply_definitions(self, body: dict[str, Any]) -> None:
        fields = body.get("custom_fields") or []
        statuses = body.get("custom_line_statuses") or []
        cats = body.get("categories") or []
        for name, value in (("custom_fields", fields), ("custom_line_statuses", statuses), ("categories", cats)):
            if not isinstance(value, list):
                raise RequestError(400, f"incorrect request: {name} must be an array")
        for i, cf in enumerate(fields):
            check_custom_field_definition(i, cf)
        for i, st in enumerate(statuses):
            check_line_status_definition(i, st)
        check_category_tree(cats, set(self.store.categories), need_parents=not self.accept_orphan_categories)
        # All valid: apply.
        for cf in fields:
            self.store.custom_fields[cf["external_id"]] = dict(cf)
        for st in statuses:
            self.store.custom_line_statuses[st["external_id"]] = dict(st)
        for cat in cats:
            self.store.internal_id("category", cat["external_id"])
            self.store.categories[cat["external_id"]] = {k: v for k, v in cat.items() if k != "token"}

    def _import(self, body: dict[str, Any], kind: str, validate: Any, stored: dict[str, dict[str, Any]]) -> dict[str, Any]:
        data = body.get("data")
        if not isinstance(data, list):
            raise RequestError(400, "incorrect request: data must be an array")
        if not data:
            self.stats["empty_data_requests"] += 1
            if self.strict_data:
                raise RequestError(400, "incorrect request: data is required and must not be empty")
        for i, item in enumerate(data):
            problem = type_problem(item, kind)
            if problem:
                raise RequestError(400, f"incorrect request: data[{i}]{problem}")
        self._apply_definitions(body)
        result = []
        for item in data:
            ext = item.get("external_id") if isinstance(item, dict) else None
            try:
                if not isinstance(item, dict):
                    raise ItemError(400, "record must be an object")
                forced = self.faults.reject.get(str(ext))
                if forced:
                    raise ItemError(int(forced[0]), str(forced[1]))
                validate(self, item)
            except ItemError as err:
                result.append({"error": err.code, "error_text": err.text, "external_id": ext})
                continue
            ext = str(ext)  # validated: present
            self.store.internal_id(kind, ext)
            stored[ext] = item
            self.import_counts[(kind, ext)] += 1
            if kind == "order":
                self.skip_triggers[ext] = bool(body.get("skip_triggers", False))
            if kind == "product":
                for sku in item.get("sku") or []:
                    self.store.internal_id("sku", sku["external_id"])
                    self.store.skus[sku["external_id"]] = {**sku, "product_external_id": ext}
            result.append({"error": 0, "error_text": "", "external_id": ext})
        if self.freeze_gc:
            gc.freeze()
        return {"result": result}

    # --- list / delete -------------------------------------------------------------------------------
    def _page(self, body: dict[str, Any], kind: str, stored: dict[str, dict[str, Any]], shape: Any) -> dict[str, Any]:
        try:
            from_id = int(body.get("from_id") or 0)
            limit = int(body.get("limit") or 100)
        except (TypeError, ValueError):
            raise RequestError(400, "incorrect request: from_id and limit must be integers") from None
        endpoint = body.get("endpoint")
        rows = list(itertools.islice(
            ((iid, ext) for iid, ext in self.store.after(kind, from_id)
             if ext in stored and (not endpoint or stored[ext].get("endpoint") == endpoint)),
            max(1, limit)))
        result = [shape(self, stored[ext], iid) for iid, ext in rows]
        return {"result": result, "next_from_id": str(rows[-1][0] if rows else from_id)}

    def _delete_many(self, body: dict[str, Any], kind: str, stored: dict[str, dict[str, Any]]) -> dict[str, Any]:
        ext_ids = body.get("external_ids") or []
        ids = body.get("ids") or []
        if not isinstance(ext_ids, list) or not isinstance(ids, list) or not (ext_ids or ids):
            raise RequestError(400, "incorrect request: ids or external_ids required")
        by_id = {iid: ext for (k, ext), iid in self.store.ids.items() if k == kind}
        targets = {str(e) for e in ext_ids} | {by_id[i] for i in ids if i in by_id}
        deleted = 0
        for ext in targets:
            if stored.pop(ext, None) is not None:
                deleted += 1
                if kind == "product":  # INFERRED: deleting a product removes its SKUs (they cannot exist alone)
                    for sku_id in [s for s, v in self.store.skus.items() if v.get("product_external_id") == ext]:
                        del self.store.skus[sku_id]
        return {"deleted_count": deleted}


# --- method table ----------------------------------------------------------------------------------
def _orders_import(emu: AltcraftEmulator, body: dict[str, Any]) -> dict[str, Any]:
    def validate(e: AltcraftEmulator, item: dict[str, Any]) -> None:
        validate_order(e, item)
        if e.require_profiles:
            profiles.require_profile(e, item)

    return emu._import(body, "order", validate, emu.store.orders)


def _sku_import(emu: AltcraftEmulator, body: dict[str, Any]) -> dict[str, Any]:
    return emu._import(body, "sku", validate_sku, emu.store.skus)


def _products_import(emu: AltcraftEmulator, body: dict[str, Any]) -> dict[str, Any]:
    return emu._import(body, "product", validate_product, emu.store.products)


def _order_shape(emu: AltcraftEmulator, order: dict[str, Any], iid: int) -> dict[str, Any]:
    out = {k: v for k, v in order.items() if k not in ("matching", "email", "phone", "profile_id")}
    out["profile"] = {"profile_id": profiles.order_profile(emu, order) or str(iid), "xxh": ""}
    out["lines"] = [{**line, "currency": order.get("currency")} for line in order.get("lines", [])]
    return out


def _orders_list(emu: AltcraftEmulator, body: dict[str, Any]) -> dict[str, Any]:
    return emu._page(body, "order", emu.store.orders, _order_shape)


def _products_list(emu: AltcraftEmulator, body: dict[str, Any]) -> dict[str, Any]:
    def shape(e: AltcraftEmulator, p: dict[str, Any], iid: int) -> dict[str, Any]:
        skus = [
            {"name": s.get("name"), "external_id": s["external_id"]}
            for s in e.store.skus.values() if s.get("product_external_id") == p["external_id"]
        ]
        return {"id": iid, "name": p.get("name"), "external_id": p["external_id"], "sku": skus}

    return emu._page(body, "product", emu.store.products, shape)


def _sku_list(emu: AltcraftEmulator, body: dict[str, Any]) -> dict[str, Any]:
    return emu._page(
        body, "sku", emu.store.skus, lambda e, s, iid: {"id": iid, "name": s.get("name"), "external_id": s["external_id"]}
    )


def _order_ref(emu: AltcraftEmulator, body: dict[str, Any]) -> str:
    ext = body.get("external_id")
    if ext is None and body.get("id") is not None:
        ext = next((e for (k, e), i in emu.store.ids.items() if k == "order" and i == body.get("id")), None)
    if not ext:
        raise RequestError(400, "incorrect request: id or external_id required")
    if ext not in emu.store.orders:
        raise RequestError(404, f"order {ext!r} not found")  # INFERRED code
    return str(ext)


def _orders_delete(emu: AltcraftEmulator, body: dict[str, Any]) -> dict[str, Any]:
    del emu.store.orders[_order_ref(emu, body)]
    return {}


def _orders_get_status(emu: AltcraftEmulator, body: dict[str, Any]) -> dict[str, Any]:
    order = emu.store.orders[_order_ref(emu, body)]
    return {"result": {"endpoint": order.get("endpoint"), "status": order.get("status")}}


def _update_line_status(emu: AltcraftEmulator, body: dict[str, Any]) -> dict[str, Any]:
    order = emu.store.orders.get(str(body.get("order_external_id")))
    if order is None:
        raise RequestError(404, "order not found")
    status = body.get("status_external_id")
    if status not in LINE_STATUSES | set(emu.store.custom_line_statuses):
        raise RequestError(400, f"incorrect request: status {status!r}")
    for line in order["lines"]:
        if line["external_id"] == body.get("order_line_external_id"):
            line["status"] = status
            return {}
    raise RequestError(404, "order line not found")


_METHODS = {
    "market/orders/import": _orders_import,
    "market/sku/import": _sku_import,
    "market/products/import": _products_import,
    "market/orders/list": _orders_list,
    "market/products/list": _products_list,
    "market/sku/list": _sku_list,
    "market/orders/delete": _orders_delete,
    "market/sku/delete": lambda e, b: e._delete_many(b, "sku", e.store.skus),
    "market/products/delete": lambda e, b: e._delete_many(b, "product", e.store.products),
    "market/orders/get_status": _orders_get_status,
    "market/orders/update_order_line_status": _update_line_status,
    **profiles.METHODS,
}
