"""What an Altcraft answer means, and how fast requests may go.

An answer is believed only when it is Altcraft's own: a JSON object with the envelope every method
returns (``error`` and ``error_text``, docs/altcraft-api.md §0) and, for an import, a ``result`` list answering the
records sent (docs/altcraft-api.md §5). Then it is one of: the decoded body (``error == 0``); a transient failure to retry
(:class:`Transient`: body error 429/5xx); a refused request to isolate (:class:`Rejected`: body error
400, or HTTP 413); or a failure no retry can help (bad token, tariff limit, a URL that is not an API
method). HTTP 200 may carry an error in the body (docs/altcraft-api.md §0, INFERRED), so the body is always read.

Anything else is a :class:`Transient` request error, never a ledger fact: connection trouble, HTTP
429/5xx, a redirect (never followed: the body and the token would go to the ``Location``), an HTML page
from a proxy or a WAF whatever its status, an empty body, a body without the envelope or the results.
Every text taken from an answer is masked (:mod:`altcraft_sync.masking`): the token never appears in
any of these messages, whatever the server echoed."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson
import requests

from altcraft_sync.errors import AltcraftAuthError, AltcraftError, AltcraftTariffError
from altcraft_sync.masking import mask
from connectors.altcraft_records import Outcome

TRANSIENT_HTTP = frozenset({429, 500, 502, 503, 504})


ECHO_MAX = 500
"""Characters kept of a text taken from an answer: a server may echo the whole request (customers' data)."""


def echoed(text: str) -> str:
    """A text from an answer, masked and cut to :data:`ECHO_MAX` characters."""
    text = mask(text)
    return text if len(text) <= ECHO_MAX else text[:ECHO_MAX - 1] + "…"


class Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        reason = echoed(reason)
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class Rejected(Exception):
    """The whole request was refused (HTTP 413, or body error 400): isolate the offending records.

    ``believed`` is False for an HTTP 413 without Altcraft's envelope: a proxy's or a web server's body
    limit in front of Altcraft. Its size signal is still acted on (the batch is halved), but it is not
    Altcraft's verdict on a record, so a record refused alone by it is failed (sent again), never a
    rejection in the ledger (:meth:`outcome`)."""

    def __init__(self, code: int, text: str, believed: bool = True) -> None:
        text = echoed(text)
        super().__init__(text)
        self.code, self.text, self.believed = code, text, believed

    def outcome(self, external_id: str, permanent: bool = True) -> Outcome:
        """The outcome of a record refused alone by this answer."""
        if not self.believed:
            return Outcome(external_id, "failed", self.code, self.text)
        return Outcome(external_id, "rejected", self.code, self.text, permanent)


def read_answer(resp: requests.Response, api_url: str, method: str, *, sent: Sequence[str] = (),
                needs: str | None = None) -> dict[str, Any]:
    """The decoded body of a successful call, or the exception that says what the answer means.

    ``sent``: the external ids of the records in an import's ``data``; a successful answer must carry a
    ``result`` list answering them (:func:`check_results`). ``needs``: a key a successful answer of this
    method always has (``result`` of a list, ``deleted_count`` of a batch delete)."""
    status = resp.status_code
    if 300 <= status < 400:
        where = resp.headers.get("Location") or "(no Location)"
        raise Transient(f"HTTP {status} redirect to {where} (not followed: only Altcraft's own answer counts; "
                        "check altcraft.api_url)")
    if status in (401, 403):
        raise AltcraftAuthError(
            f"Altcraft refused the API token (HTTP {status}): check ALTCRAFT_TOKEN/altcraft.token and that "
            "the token has market roles"
        )
    if status in TRANSIENT_HTTP:
        raise Transient(f"HTTP {status}", retry_after(resp.headers.get("Retry-After")))
    if status == 413:
        try:
            answer = envelope(resp)
        except Transient:  # an HTML page or no body: the limit of something in front of Altcraft
            raise Rejected(413, "HTTP 413 request body too large, not in Altcraft's own answer (a proxy's or web "
                           "server's body limit? lower altcraft.max_body_bytes or raise that limit); sent again "
                           "next run", believed=False) from None
        raise Rejected(int(answer["error"]) or 413, str(answer.get("error_text") or "request body too large"))
    if status in (404, 405):
        raise AltcraftError(wrong_url(api_url, method, f"HTTP {status}"))
    answer = envelope(resp)
    code = int(answer["error"])
    text = str(answer.get("error_text") or "")
    if code == 0 and status < 400:
        if sent:
            check_results(answer.get("result"), sent)
        elif needs and answer.get(needs) is None:
            raise Transient(f"HTTP {status}: Altcraft's answer has no {needs!r}; not believed")
        return answer
    if code in (401, 403):
        raise AltcraftAuthError(
            f"Altcraft refused the API token (error {code}: {text}): check ALTCRAFT_TOKEN/altcraft.token "
            "and that the token has market roles"
        )
    if code == 402:
        raise AltcraftTariffError(f"Altcraft tariff limit reached (error 402: {text}): raise the plan's limits")
    if code in TRANSIENT_HTTP:
        raise Transient(f"error {code}: {text}")
    if "unknown method" in text.lower():
        raise AltcraftError(wrong_url(api_url, method, f"error {code}: {text}"))
    raise Rejected(code or status, text or f"HTTP {status}")



def envelope(resp: requests.Response) -> dict[str, Any]:
    """The body as Altcraft's envelope, or :class:`Transient`: a page that is not Altcraft's answer (HTML,
    empty, another JSON) says nothing about the records sent, whatever its HTTP status."""
    status, kind = resp.status_code, (resp.headers.get("Content-Type") or "no content type").split(";")[0]
    if not resp.content.strip():
        raise Transient(f"HTTP {status} with an empty body (not Altcraft's answer)")
    try:
        answer = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        raise Transient(f"HTTP {status} with a {kind} body that is not JSON (not Altcraft's answer: a proxy "
                        "or a firewall?)") from None
    if not isinstance(answer, dict) or "error" not in answer or "error_text" not in answer:
        raise Transient(f"HTTP {status} with JSON that lacks Altcraft's error/error_text envelope")
    code = answer["error"]
    if isinstance(code, bool) or not isinstance(code, int | str) or not str(code).strip().lstrip("-").isdigit():
        raise Transient(f"HTTP {status} with an error code {str(code)[:40]!r} that is not a number")
    return answer


def check_results(result: Any, sent: Sequence[str]) -> None:
    """An import's ``result`` must be a list of ``{external_id, error}`` answering the records sent.
    sku/import lists "the IDs that were imported" (api.md §1.2), so one record missing from a result
    that answers the others is that record not imported (a transient per-record failure, decided by the
    client); a result answering none of them, or malformed, is not believed at all."""
    if not isinstance(result, list):
        raise Transient("Altcraft's answer has no per-record result list; not believed")
    answered = set()
    for item in result:
        if not isinstance(item, dict) or (ext := item.get("external_id")) is None:
            raise Transient("Altcraft's per-record result holds an item without an external_id; not believed")
        code = item.get("error", 0)
        if type(code) is not int and (not isinstance(code, int | str | None) or isinstance(code, bool) or
                                      (isinstance(code, str) and not code.strip().lstrip("-").isdigit())):
            raise Transient(f"Altcraft's per-record error code {str(code)[:40]!r} is not a number; not believed")
        answered.add(ext if type(ext) is str else str(ext))
    if answered.isdisjoint(sent):
        raise Transient(f"Altcraft's answer has no result for any of the {len(sent)} records sent; not believed")


def wrong_url(api_url: str, method: str, answer: str) -> str:
    """One line for an answer that means the URL is not an API method: which URL was called, and what the
    base should look like (the usual mistake is a base without its ``/api/v1.1/`` path)."""
    called = f"Altcraft answered {answer} for {api_url}{method}"
    if "/api/v1" not in api_url:
        base = api_url.rstrip("/").removesuffix("/api")  # a base that already ends in /api/ needs only v1.1/
        return f"{called}: altcraft.api_url must be the API base ending in /api/v1.1/, e.g. {base}/api/v1.1/"
    return f"{called}: check altcraft.api_url (it should end in /api/v1.1/) and that this Altcraft has the method"


def too_long_a_wait(asked: float, limit: float) -> str:
    """The line that ends a run when Altcraft asks to wait longer than ``max_retry_after_seconds``."""
    from datetime import UTC, datetime, timedelta

    until = datetime.now(UTC) + timedelta(seconds=asked)
    return (f"Altcraft asked to wait {asked:.0f} s ({timedelta(seconds=round(asked))}, Retry-After) before the next "
            f"request, longer than altcraft.max_retry_after_seconds ({limit:g} s): the run ends; run it again "
            f"after {until:%Y-%m-%d %H:%M} UTC")


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class RateLimiter:
    """A thread-safe token bucket: at most ``rate`` requests per second, bursts of up to ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            time.sleep(wait)


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(api_url: str, rate: float) -> RateLimiter:
    """One limiter per API URL per process: nightly and backfill runs in one worker share it."""
    with _limiters_lock:
        limiter = _limiters.get(api_url)
        if limiter is None or limiter.rate != rate:
            limiter = _limiters[api_url] = RateLimiter(rate)
        return limiter
