"""The Altcraft Market API client: every push of altcraft-sync goes through it.

What it guarantees (see ``docs/altcraft-api.md`` for the API itself):

- One pooled ``requests.Session``, connect/read timeouts on every call (a Prefect task timeout cannot
  interrupt a blocked socket), TLS verification always on, redirects never followed (a 3xx would
  re-send the body, token and customers' data to its ``Location``).
- The environment is read once, when the client is made: the proxy for ``api_url`` (``HTTPS_PROXY``,
  ``HTTP_PROXY``, ``NO_PROXY``...) and a CA bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``), as
  requests itself would read them. Not on every request: requests' own per-request reading walked the
  whole environment and looked for a ``.netrc`` three times a request (``docs/performance.md``). A
  ``.netrc`` is never used: its password would replace the ``Authorization: Bearer`` header.
- Only Altcraft's own answer is believed (:mod:`connectors.altcraft_wire`): anything else is retried
  and never becomes a delivered or rejected record.
- Retries with exponential backoff and jitter (tenacity) on connection errors, timeouts, HTTP 429 (with
  ``Retry-After`` honoured) and 500/502/503/504, capped in attempts and in total time. A bad token
  (body ``error`` 401/403 or HTTP 401/403) or the tariff limit (402) fails at once: retrying cannot help.
- Every import carries real records in ``data`` (required, docs/altcraft-api.md §1.2): root definitions and categories
  travel with one, never with an empty ``data``.
- The body's ``error`` is checked even on HTTP 200 (docs/altcraft-api.md §0: HTTP 200 may carry an error, INFERRED).
- Batches split by record count and serialized size; HTTP 413 or a whole-request 400 halves the batch
  until the offending records are isolated and reported as rejected while the rest are delivered.
- Bounded concurrency and a requests-per-second limit shared by every client of one API URL in the
  process, so a backfill running beside the nightly sync cannot flood the account.
- The token is never logged, never put in an exception, a repr or an artifact.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay

from altcraft_sync import jitter
from altcraft_sync.config import AltcraftSettings
from altcraft_sync.errors import AltcraftError, AltcraftUnavailable
from altcraft_sync.wording import plural
from connectors.altcraft_records import TRANSIENT_ITEM_CODES, Encoded, ImportReport, Outcome, Record
from connectors.altcraft_wire import (
    RateLimiter,
    Rejected,
    Transient,
    echoed,
    read_answer,
    shared_limiter,
    too_long_a_wait,
)

log = logging.getLogger("altcraft_sync.altcraft")

__all__ = ["AltcraftClient", "Encoded", "ImportReport", "Outcome", "RateLimiter", "Record"]

class AltcraftClient:
    def __init__(
        self,
        settings: AltcraftSettings,
        token: SecretStr,
        *,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._token = token  # SecretStr: masked in any repr
        self._limiter = limiter or shared_limiter(settings.api_url, settings.requests_per_second)
        self._sleep = sleep
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(4, settings.concurrency), max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.trust_env = False
        self._session.proxies = requests.utils.get_environ_proxies(settings.api_url)
        self._session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._session.headers["Content-Type"] = "application/json"
        if settings.auth == "bearer":
            self._session.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        self._pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="altcraft")
        self.requests_sent = 0
        self.retries = 0
        self.answered = False
        """Altcraft answered a request of this client with its own envelope (``error == 0``). A run that sent
        nothing has not heard whether its token still works: it asks once (``runner.runtime.confirm_token``)."""
        self._count_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AltcraftClient(api_url={self.settings.api_url!r}, auth={self.settings.auth!r}, token='**********')"

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._session.close()

    def __enter__(self) -> AltcraftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- imports -------------------------------------------------------------------------------------
    def import_records(self, method: str, records: Sequence[Record], *, root: dict[str, Any] | None = None) -> ImportReport:
        """Records through a Market import method (a stream spec's ``import_method``), in batches, with
        ``root`` options such as ``skip_triggers``. Root definitions never ride here: they travel with one
        carrier record first (:meth:`import_with_roots`), so a refused definition fails once, clearly."""
        return self.import_groups(method, [(records, root or {})])

    def import_groups(self, method: str, groups: Sequence[tuple[Sequence[Record], dict[str, Any]]]) -> ImportReport:
        """Groups of records through one import method, each group with its own ``root`` options (such as
        ``skip_triggers``, which holds for a whole request). Every group's batches go to the senders at
        once, up to ``concurrency`` at a time: the groups' requests overlap instead of waiting on each
        other (a chunk of old orders with a few recent ones is one round of requests, not two)."""
        report = ImportReport()
        futures = []
        for records, root in groups:
            prefix = self._prefix(root)
            futures += [self._pool.submit(self._send_isolating, method, prefix, "data", batch)
                        for batch in self._batches(records, len(prefix))]
        for fut in futures:
            report.merge(fut.result())
        return report

    def import_categories(
        self, categories: Sequence[Record], *, carrier: Record, method: str = "market/products/import",
        roots: dict[str, Any] | None = None,
    ) -> ImportReport:
        """Categories as the root ``categories`` of ``products/import`` (or ``sku/import``), each request
        carrying one real product (or SKU), ``carrier``, in ``data``, and ``roots`` (the definitions the
        carrier uses: they travel in the same request, so they precede it).

        ``data`` is required (docs/altcraft-api.md §1.2); that a request with an empty one is accepted is only inferred,
        so no request relies on it. The carrier is a record the ledger holds as delivered, re-sent
        unchanged (imports upsert by ``external_id``), or a new one. Categories get no per-item result
        (docs/altcraft-api.md §2.4): a category is delivered when its request answered ``error: 0``; a refused request
        is halved until the bad categories are isolated. A category refused alone is rejected only if the
        carrier with its definitions, sent alone, is accepted; otherwise the refusal is theirs and the
        category *failed* (sent again later), never rejected for what it does not hold. Batches go one
        after another, in the order given (parents before children,
        :func:`transforms.catalog.map_categories`). ``report.carrier`` is the carrier's own outcome."""
        report = ImportReport()
        head = self._prefix(roots or {})
        prefix = head + b'"data":[' + carrier.data + b"],"
        probe: dict[str, Rejected | None] = {}
        for batch in self._batches(categories, len(prefix)):
            report.merge(self._send_isolating(method, prefix, "categories", batch, carrier,
                                              lambda: self._carrier_alone(method, head, carrier, probe)))
        if report.carrier is None and categories:
            report.carrier = Outcome(carrier.external_id, "failed", 0, "every request carrying it was refused")
        return report

    def _carrier_alone(self, method: str, head: bytes, carrier: Record, probe: dict[str, Rejected | None]
                       ) -> Rejected | None:
        """Whether Altcraft refuses the carrier (and the definitions it travels with) without categories:
        asked once per call of :meth:`import_categories`, only when a single category was refused."""
        if "answer" not in probe:
            try:
                self._post(method, head + b'"data":[' + carrier.data + b"]}", sent=[carrier.external_id])
                probe["answer"] = None
            except Rejected as err:
                probe["answer"] = err
        return probe["answer"]

    def import_with_roots(self, method: str, carrier: Record, roots: dict[str, Any]) -> Outcome:
        """Root definitions (``custom_fields``, ``custom_line_statuses``, ``skip_triggers``) in one request
        with one real record, ``carrier``, as the seed's own orders/import example sends them: an import
        with an empty ``data`` is not documented to work (docs/altcraft-api.md marks ``data`` required).

        A refused request fails the run with one line: a bad definition would otherwise make every record
        that uses it fail. Returns the carrier's own outcome."""
        body = self._prefix(roots) + b'"data":[' + carrier.data + b"]}"
        try:
            answer = self._post(method, body, sent=[carrier.external_id])
        except Rejected as err:
            names = ", ".join(f"{k} {[d.get('external_id') for d in v]}" for k, v in roots.items() if isinstance(v, list))
            raise AltcraftError(f"Altcraft refused the definitions ({names}) sent with record "
                                f"{carrier.external_id} through {method}: {err.code} {err.text}") from None
        return self._outcomes([carrier], answer.get("result"))[carrier.external_id]

    # --- deletes -------------------------------------------------------------------------------------
    def delete_records(self, method: str, external_ids: Iterable[str], *, one_by_one: bool = False) -> ImportReport:
        """Delete by ``external_id`` through a Market delete method (a stream spec's ``delete_method``).
        ``one_by_one``: the method takes one id per request (orders/delete, v74 variant of docs/altcraft-api.md §1.1),
        sent ``concurrency`` at once; otherwise ``external_ids`` batches. A record Altcraft does not hold
        counts as deleted: the goal state is reached."""
        ids = list(external_ids)
        return self._delete_each(method, ids) if one_by_one else self._delete_many(method, ids)

    def _delete_each(self, method: str, ids: list[str]) -> ImportReport:
        report = ImportReport()

        def one(ext: str) -> Outcome:
            try:
                self._post(method, self._body({"external_id": ext}))
            except Rejected as err:
                if err.code == 404 and err.believed:
                    return Outcome(ext, "delivered", 404, "already absent")
                return err.outcome(ext)
            return Outcome(ext, "delivered")

        for outcome in self._pool.map(one, ids):
            report.outcomes[outcome.external_id] = outcome
        report.requests = len(ids)
        return report

    def _delete_many(self, method: str, ids: list[str]) -> ImportReport:
        """Batch delete. Only ``deleted_count`` comes back (docs/altcraft-api.md §1.2): records already absent are
        not errors, so every asked id counts as delivered once the request succeeded."""
        report = ImportReport()
        for start in range(0, len(ids), self.settings.batch_size):
            batch = ids[start:start + self.settings.batch_size]
            answer = self._post(method, self._body({"external_ids": batch}), needs="deleted_count")
            report.requests += 1
            log.info("%s: asked %d, Altcraft deleted %s", method, len(batch), answer.get("deleted_count"))
            for ext in batch:
                report.outcomes[ext] = Outcome(ext, "delivered")
        return report

    # --- reads ---------------------------------------------------------------------------------------
    def list_records(self, method: str, *, limit: int = 500, extra: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every record of a Market list method (a stream spec's ``list_method``), page by page."""
        return self._list(method, limit, extra or {})

    def get_order_status(self, external_id: str) -> dict[str, Any]:
        return self._post("market/orders/get_status", self._body({"external_id": external_id}), needs="result")["result"]

    def _list(self, method: str, limit: int, extra: dict[str, Any], items: str = "result") -> Iterator[dict[str, Any]]:
        """Follow ``next_from_id`` until a page comes back empty (docs/altcraft-api.md §1.1); a page's records
        are under ``items`` (``data`` for ``profiles/list``)."""
        from_id = ""
        while True:
            answer = self._post(method, self._body({"from_id": from_id, "limit": limit, **extra}), needs=items)
            page = answer.get(items) or []
            if not page:
                return
            yield from page
            next_id = str(answer.get("next_from_id") or "")
            if not next_id or next_id == from_id:
                return
            from_id = next_id

    # --- batching ------------------------------------------------------------------------------------
    def _batches(self, records: Sequence[Record], overhead: int) -> Iterator[list[Record]]:
        limit, cap = self.settings.batch_size, self.settings.max_body_bytes
        batch: list[Record] = []
        size = overhead + 16
        for rec in records:
            rec_size = len(rec.data) + 1
            if batch and (len(batch) >= limit or size + rec_size > cap):
                yield batch
                batch, size = [], overhead + 16
            batch.append(rec)
            size += rec_size
        if batch:
            yield batch

    def _send_isolating(self, method: str, prefix: bytes, items_key: str, batch: list[Record],
                        carrier: Record | None = None,
                        carrier_refused: Callable[[], Rejected | None] | None = None) -> ImportReport:
        report = ImportReport(requests=1)
        body = prefix + b'"' + items_key.encode() + b'":[' + b",".join(r.data for r in batch) + b"]}"
        in_data = [carrier] if carrier is not None and items_key != "data" else batch
        try:
            answer = self._post(method, body, sent=[r.external_id for r in in_data])
        except Rejected as err:
            fault = carrier_refused() if carrier is not None and carrier_refused is not None else None
            if carrier is not None and fault is not None:  # the carrier's refusal, not the categories'
                report.carrier = fault.outcome(carrier.external_id, permanent=False)
                why = f"not sent: its carrier {carrier.external_id} was refused ({fault.code} {fault.text})"
                report.outcomes.update({r.external_id: Outcome(r.external_id, "failed", fault.code, why) for r in batch})
                return report
            if len(batch) == 1:
                rec = batch[0]
                log.warning("%s: record %s refused (%s %s)", method, rec.external_id, err.code, err.text)
                report.outcomes[rec.external_id] = err.outcome(rec.external_id)
                return report
            mid = len(batch) // 2
            log.info("%s: request of %s refused (%s); halving to isolate", method, plural(len(batch), "record"), err.code)
            for half in (batch[:mid], batch[mid:]):
                report.merge(self._send_isolating(method, prefix, items_key, half, carrier, carrier_refused))
            return report
        if items_key != "data":  # categories: no per-item result, the request's success is theirs
            report.outcomes.update({r.external_id: Outcome(r.external_id, "delivered") for r in batch})
            if carrier is not None:
                report.carrier = self._outcomes([carrier], answer.get("result"))[carrier.external_id]
            return report
        report.outcomes.update(self._outcomes(batch, answer.get("result")))
        return report

    def _outcomes(self, batch: list[Record], result: Any) -> dict[str, Outcome]:
        by_id: dict[str, dict[str, Any]] = {}
        for item in result if isinstance(result, list) else []:
            if isinstance(item, dict) and (ext := item.get("external_id")) is not None:
                by_id[ext if type(ext) is str else str(ext)] = item
        permanent = set(self.settings.permanent_error_codes)
        out: dict[str, Outcome] = {}
        for rec in batch:
            item = by_id.get(rec.external_id)
            if item is None:
                # INFERRED: the sku/import page calls result "IDs that were imported"; a record missing
                # from it was not imported. Treat as transient so the next run sends it again.
                out[rec.external_id] = Outcome(rec.external_id, "failed", 0, "no result for this record")
                continue
            code = int(item.get("error") or 0)
            if code == 0:
                out[rec.external_id] = Outcome(rec.external_id, "delivered")
            elif code in TRANSIENT_ITEM_CODES:
                out[rec.external_id] = Outcome(rec.external_id, "failed", code, echoed(str(item.get("error_text") or "")))
            else:
                out[rec.external_id] = Outcome(
                    rec.external_id, "rejected", code, echoed(str(item.get("error_text") or "")), permanent=code in permanent
                )
        return out

    # --- transport -----------------------------------------------------------------------------------
    def _prefix(self, root: dict[str, Any]) -> bytes:
        """The body up to the items array, e.g. ``{"token":"...","skip_triggers":false,``."""
        head = dict(root)
        if self.settings.auth == "body":
            head = {"token": self._token.get_secret_value(), **head}
        return orjson.dumps(head)[:-1] + (b"," if head else b"")

    def _body(self, payload: dict[str, Any]) -> bytes:
        """A whole small request body (deletes, lists, definitions), with the token if it goes in the body."""
        if self.settings.auth == "body":
            payload = {"token": self._token.get_secret_value(), **payload}
        return orjson.dumps(payload)

    def _post(self, method: str, body: bytes, *, sent: Sequence[str] = (), needs: str | None = None) -> dict[str, Any]:
        """POST with retries on transient failures; returns the decoded body with ``error == 0``, believed
        as Altcraft's own answer (``sent`` and ``needs``: :func:`connectors.altcraft_wire.read_answer`)."""
        settings = self.settings
        retrying = Retrying(
            retry=retry_if_exception_type(Transient),
            stop=stop_after_attempt(settings.max_attempts) | stop_after_delay(settings.max_retry_seconds),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
            before_sleep=self._before_sleep(method),
        )
        started = time.monotonic()
        try:
            answer = retrying(self._attempt, method, body, sent, needs)
            self.answered = True
            return answer
        except Transient as err:
            attempts = retrying.statistics.get("attempt_number", settings.max_attempts)
            raise AltcraftUnavailable(
                f"Altcraft {method} kept failing after {plural(attempts, 'attempt')} over "
                f"{time.monotonic() - started:.1f} s: {err.reason}"
            ) from None

    def _before_sleep(self, method: str) -> Callable[[RetryCallState], None]:
        def hook(state: RetryCallState) -> None:
            with self._count_lock:
                self.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info("%s: attempt %d failed (%s); retrying", method, state.attempt_number, getattr(exc, "reason", exc))

        return hook

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with full jitter, never shorter than the server's ``Retry-After``. A
        ``Retry-After`` past ``max_retry_after_seconds`` ends the run, saying how long Altcraft asked for."""
        s = self.settings
        backoff = min(s.backoff_max, s.backoff_initial * 2 ** (state.attempt_number - 1))
        delay = jitter.uniform(0, backoff)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            if exc.retry_after > s.max_retry_after_seconds:
                raise AltcraftUnavailable(too_long_a_wait(exc.retry_after, s.max_retry_after_seconds))
            delay = max(delay, exc.retry_after)
        return delay

    def _attempt(self, method: str, body: bytes, sent: Sequence[str], needs: str | None) -> dict[str, Any]:
        s = self.settings
        self._limiter.acquire()
        with self._count_lock:
            self.requests_sent += 1
        try:
            resp = self._session.post(s.api_url + method, data=body, timeout=(s.connect_timeout, s.read_timeout),
                                      allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as err:
            raise Transient(f"{type(err).__name__} talking to {s.api_url}") from None
        except requests.RequestException as err:
            raise Transient(type(err).__name__) from None
        return read_answer(resp, s.api_url, method, sent=sent, needs=needs)
