"""What an Altcraft answer means, and how fast requests may go.

An answer is one of: the decoded body (``error == 0``); a transient failure to retry (:class:`Transient`:
connection trouble, HTTP 429/5xx, honouring ``Retry-After``); a refused request to isolate
(:class:`Rejected`: HTTP 413, or body error 400, docs/altcraft-api.md §0); or a failure no retry can help
(bad token, tariff limit, a URL that is not an API method). HTTP 200 may carry an error in the body
(docs/altcraft-api.md §0, INFERRED), so the body is always read. The token never appears in any of these messages."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import requests

from altcraft_sync.errors import AltcraftAuthError, AltcraftError, AltcraftTariffError

TRANSIENT_HTTP = frozenset({429, 500, 502, 503, 504})


class Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class Rejected(Exception):
    """The whole request was refused (HTTP 413, or body error 400): isolate the offending records."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


def read_answer(resp: requests.Response, api_url: str, method: str) -> dict[str, Any]:
    """The decoded body of a successful call, or the exception that says what the answer means."""
    status = resp.status_code
    if status in (401, 403):
        raise AltcraftAuthError(
            f"Altcraft refused the API token (HTTP {status}): check ALTCRAFT_TOKEN/altcraft.token and that "
            "the token has market roles"
        )
    if status in TRANSIENT_HTTP:
        raise Transient(f"HTTP {status}", retry_after(resp.headers.get("Retry-After")))
    if status == 413:
        raise Rejected(413, "request body too large for Altcraft")
    if status in (404, 405):
        raise AltcraftError(wrong_url(api_url, method, f"HTTP {status}"))
    try:
        answer = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        if status >= 400:
            raise Rejected(status, f"HTTP {status}") from None
        raise Transient(f"HTTP {status} with a body that is not JSON") from None
    if not isinstance(answer, dict):
        raise Transient(f"HTTP {status} with an unexpected body")
    code = int(answer.get("error") or 0)
    text = str(answer.get("error_text") or "")
    if code == 0 and status < 400:
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



def wrong_url(api_url: str, method: str, answer: str) -> str:
    """One line for an answer that means the URL is not an API method: which URL was called, and what the
    base should look like (the usual mistake is a base without its ``/api/v1.1/`` path)."""
    called = f"Altcraft answered {answer} for {api_url}{method}"
    if "/api/v1" not in api_url:
        return (f"{called}: altcraft.api_url must be the API base ending in /api/v1.1/, e.g. "
                f"{api_url.rstrip('/')}/api/v1.1/")
    return f"{called}: check altcraft.api_url (it should end in /api/v1.1/) and that this Altcraft has the method"


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
