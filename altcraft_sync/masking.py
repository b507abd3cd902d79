"""The one masker every outgoing message passes: errors, log records, the state store's texts, artifacts.

Built from the configuration: the API token and every password the settings hold (URL userinfo and
query parameters such as ``?password=``). A secret is replaced in each form a server or a library may
echo it in: as it is, URL-encoded (``%2F``, ``+``) and JSON-escaped. Patterns catch what was never
configured: a URL's userinfo password, a ``password=``/``token=`` query parameter, a ``"token": "..."``
in an echoed request body, a ``Bearer`` header.

The masker is process-wide (:func:`register` adds the secrets of each loaded config), because the places
it guards (exception texts, the logging record factory, Prefect's logs and events) have no config at hand.

Personal data is not a secret (an operator must recognise a person) but is never shown whole:
:func:`hide_contact` is how every report shows an e-mail or a phone.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

HIDDEN = "***"
SECRET_PARAMS = ("password", "passwd", "pwd", "pass", "token", "secret", "api_key", "apikey", "access_token")
"""Query parameters and JSON keys whose value is a secret wherever it appears."""

_KEYS = "|".join(SECRET_PARAMS)
_PATTERNS = (
    # scheme://user:password@host: keep the user, hide the password
    (re.compile(r"(?P<keep>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)[^\s@/'\"]+(?=@)"), rf"\g<keep>{HIDDEN}"),
    # ?password=... / &token=...
    (re.compile(rf"(?P<keep>[?&;](?:{_KEYS})=)[^&;\s'\"#]+", re.IGNORECASE), rf"\g<keep>{HIDDEN}"),
    # "token": "..." (an echoed JSON body, escaped or not)
    (re.compile(rf"(?P<keep>\\?[\"'](?:{_KEYS})\\?[\"']\s*[:=]\s*\\?[\"'])[^\"'\\]+", re.IGNORECASE), rf"\g<keep>{HIDDEN}"),
    # an Authorization header's value (the header's own spelling only: "bearer" in prose stays)
    (re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9\-._~+/=]+"), rf"\g<keep>{HIDDEN}"),
)
MIN_SECRET = 4
"""Shorter values are not replaced verbatim (a 1-character password would mask every such letter); the
patterns still hide them where they stand in a URL or a body."""


def variants(secret: str) -> set[str]:
    """Every form of ``secret`` an answer or a library may echo: raw, URL-encoded, JSON-escaped."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1], unquote(secret)}
    return {f for f in forms if len(f) >= MIN_SECRET}


def url_secrets(url: str) -> set[str]:
    """The passwords a URL holds: its userinfo password and its secret-named query parameters."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
        if parts.password:
            found.add(parts.password)
        found.update(v for k, v in parse_qsl(parts.query, keep_blank_values=False) if k.lower() in SECRET_PARAMS)
    except ValueError:
        pass
    return found


class Masker:
    """Replaces known secrets (every variant) and secret-shaped patterns in a text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            known = set(self._secrets)
            for s in secrets:
                if s:
                    known |= variants(s)
            self._secrets = tuple(sorted(known, key=len, reverse=True))  # longest first: no partial leftovers

    def clear(self) -> None:
        with self._lock:
            self._secrets = ()

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, HIDDEN)
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
        return text


MASKER = Masker()


def mask(text: Any) -> str:
    """``text`` (anything, as ``str``) with every secret hidden."""
    return MASKER(text if isinstance(text, str) else str(text))


def mask_optional(text: str | None) -> str | None:
    return None if text is None else MASKER(text)


def mask_tree(value: Any) -> Any:
    """Every string inside a JSON-like value masked (artifact tables, figures, quarantine reasons)."""
    if isinstance(value, str):
        return MASKER(value)
    if isinstance(value, dict):
        return {k: mask_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_tree(v) for v in value]
    return value


def register(*secrets: str, urls: Iterable[str] = ()) -> None:
    """Add the secrets of a config (the token, the database URLs' passwords) to the process's masker."""
    found = {s for s in secrets if s}
    for url in urls:
        found |= url_secrets(url)
    MASKER.add(found)


# --- logging: every record is masked when it is made -------------------------------------------------
class MaskingFilter(logging.Filter):
    """Masks a record's message, arguments and traceback text in place. Installed as a filter on the root
    and Prefect loggers' handlers, and run by the record factory for every record of every logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def mask_record(record: logging.LogRecord) -> None:
    if getattr(record, "_altcraft_masked", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep what the logging module would show
        message = str(record.msg)
    record.msg, record.args = MASKER(message), None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = MASKER(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = MASKER(record.exc_text)
    record._altcraft_masked = True


_installed = False
_install_lock = threading.Lock()


def install_logging() -> None:
    """Mask every log record of the process at its creation (whatever logger or handler it reaches:
    the terminal, a file, Prefect's API log handler), plus a filter on the root and Prefect handlers for
    records made before this was installed. Idempotent."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            mask_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
    flt = MaskingFilter()
    for name in ("", "prefect"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(flt)


def hide_contact(value: Any) -> Any:
    """An e-mail or phone as reports show it (a person is recognisable to the operator, not readable): an
    e-mail keeps its first two characters and its domain, anything else its first three and last two."""
    if value in (None, ""):
        return value
    text = str(value)
    if "@" in text:
        local, _, domain = text.rpartition("@")
        return f"{local[:2]}***@{domain}"
    if len(text) > 5:
        return f"{text[:3]}***{text[-2:]}"
    return "***"
