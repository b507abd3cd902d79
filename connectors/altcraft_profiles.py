"""Profiles through the Altcraft API: ``profiles/import_batch`` with per-item results read by position, the
one-profile ``profiles/import`` fallback, read-back (``profiles/list``, ``profiles/get``) and the explicit
``profiles/delete`` of ``forget`` (docs/altcraft-profiles.md).

A profile record's ``external_id`` is its key, ``email:<address>`` or ``phone:<number>``
(:mod:`transforms.profiles`): it names the matching field, and the caller's ``mode_of`` gives the mode that
field is matched with. ``import_batch`` takes one mode per request, so a batch holds profiles of one key
field. Its answer carries no echo of an item's key: ``result[i]`` is ``data[i]``'s outcome only when the
counts agree; when they do not, the batch is sent again one profile at a time through ``profiles/import``,
whose answer is about that one profile. The transport (retries, rate limit, batching by count and size,
the token) is :class:`connectors.altcraft.AltcraftClient`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from altcraft_sync.wording import plural
from connectors.altcraft import AltcraftClient
from connectors.altcraft_records import TRANSIENT_ITEM_CODES, ImportReport, Outcome, Record
from connectors.altcraft_wire import Rejected

log = logging.getLogger("altcraft_sync.altcraft")

BATCH_METHOD = "profiles/import_batch"
ONE_METHOD = "profiles/import"


def key_of(external_id: str) -> tuple[str, str]:
    """``email:a@b.c`` -> (``email``, ``a@b.c``)."""
    fld, _, value = external_id.partition(":")
    return fld, value


class ProfileClient:
    """Profile calls over one :class:`AltcraftClient` (its session, retries and rate limit)."""

    def __init__(self, client: AltcraftClient) -> None:
        self.client = client

    # --- imports -------------------------------------------------------------------------------------
    def import_profiles(self, records: Sequence[Record], *, root: dict[str, Any],
                        mode_of: Callable[[str], str], method: str = BATCH_METHOD) -> ImportReport:
        """Upsert ``records`` (profile data items) into the database ``root["db_id"]``: grouped by matching
        mode, in batches sent ``concurrency`` at once. Every record gets an outcome; a delivered one carries
        its ``profile_id`` as ``altcraft_id``."""
        report = ImportReport()
        by_mode: dict[str, list[Record]] = {}
        for rec in records:
            by_mode.setdefault(mode_of(key_of(rec.external_id)[0]), []).append(rec)
        c = self.client
        futures = []
        for mode, group in by_mode.items():
            head = {**root, "matching": mode}
            prefix = c._prefix(head)
            futures += [c._pool.submit(self._send, method, prefix, head, batch) for batch in c._batches(group, len(prefix))]
        for fut in futures:
            report.merge(fut.result())
        return report

    def _send(self, method: str, prefix: bytes, head: dict[str, Any], batch: list[Record]) -> ImportReport:
        report = ImportReport(requests=1)
        body = prefix + b'"data":[' + b",".join(r.data for r in batch) + b"]}"
        try:
            answer = self.client._post(method, body)
        except Rejected as err:
            if len(batch) == 1:
                report.outcomes[batch[0].external_id] = self._refused(batch[0], err)
                return report
            mid = len(batch) // 2  # a whole-request refusal: isolate the records that cause it
            for half in (batch[:mid], batch[mid:]):
                report.merge(self._send(method, prefix, head, half))
            return report
        result = answer.get("result")
        if isinstance(result, list) and len(result) == len(batch) and all(isinstance(i, dict) for i in result):
            report.outcomes.update({r.external_id: self._outcome(r, item) for r, item in zip(batch, result)})
            return report
        got = len(result) if isinstance(result, list) else "no"
        log.warning("%s: %s results for %s; sending them one at a time", method, got, plural(len(batch), "profile"))
        for rec in batch:
            report.merge(self.import_one(rec, head))
        return report

    def import_one(self, rec: Record, head: dict[str, Any]) -> ImportReport:
        """One profile through ``profiles/import``: the key at the top level beside ``matching``."""
        fld, value = key_of(rec.external_id)
        body = self.client._prefix({**head, fld: value}) + b'"data":' + rec.data + b"}"
        report = ImportReport(requests=1)
        try:
            answer = self.client._post(ONE_METHOD, body)
        except Rejected as err:
            report.outcomes[rec.external_id] = self._refused(rec, err)
            return report
        report.outcomes[rec.external_id] = self._outcome(rec, answer)
        return report

    def _outcome(self, rec: Record, item: dict[str, Any]) -> Outcome:
        code = int(item.get("error") or 0)
        text = str(item.get("error_text") or "")
        if code == 0:
            pid = item.get("profile_id")
            return Outcome(rec.external_id, "delivered", altcraft_id=str(pid) if pid else None)
        if code in TRANSIENT_ITEM_CODES:
            return Outcome(rec.external_id, "failed", code, text)
        return Outcome(rec.external_id, "rejected", code, text, permanent=code in self.client.settings.permanent_error_codes)

    def _refused(self, rec: Record, err: Rejected) -> Outcome:
        log.warning("profile %s refused (%s %s)", rec.external_id, err.code, err.text)
        return err.outcome(rec.external_id)

    # --- reads and the explicit delete ---------------------------------------------------------------
    def list_profiles(self, db_id: int, *, limit: int = 1000) -> Iterator[dict[str, Any]]:
        """Every profile of a database, ``limit`` at a time (``from_id`` / ``next_from_id``, INFERRED)."""
        return self.client._list("profiles/list", limit, {"db_id": db_id}, items="data")

    def get_profile(self, db_id: int, profile_id: str) -> dict[str, Any] | None:
        """The profile with this id, or None when Altcraft holds none (a miss is a non-zero error)."""
        try:
            answer = self.client._post("profiles/get", self.client._body(
                {"db_id": db_id, "matching": "profile_id", "profile_id": profile_id}))
        except Rejected:
            return None
        data = answer.get("data")
        return data if isinstance(data, dict) else None

    def delete_profile(self, db_id: int, profile_id: str | None, *,
                       key: tuple[str, str, str] | None = None) -> Outcome:
        """``profiles/delete`` by profile id, or, without one, by ``key`` (mode, field, value); the token's
        role needs the delete permission. A profile Altcraft does not hold counts as deleted: the goal state
        is reached."""
        if profile_id is not None:
            body: dict[str, Any] = {"db_id": db_id, "matching": "profile_id", "profile_id": profile_id}
        elif key is not None:
            body = {"db_id": db_id, "matching": key[0], key[1]: key[2]}
        else:
            raise ValueError("delete_profile needs a profile id or a key")
        name = profile_id or f"{body['matching']} {key[2] if key else ''}"
        try:
            answer = self.client._post("profiles/delete", self.client._body(body))
        except Rejected as err:
            if err.code == 404 and err.believed:
                return Outcome(name, "delivered", 404, "already absent")
            return err.outcome(name)
        data = answer.get("data")
        pid = data.get("profile_id") if isinstance(data, dict) else None
        return Outcome(name, "delivered", altcraft_id=str(pid) if pid else profile_id)

