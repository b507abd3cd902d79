"""``source:``, the shop database's settings (and the URL rules the state store's settings share): where
the shop is, how it is paged and retried, how its text is decoded and how its pages are read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from altcraft_sync.masking import mask
from altcraft_sync.sources import _Model

__all__ = ["URL_SCHEMES", "DatabaseRetry", "SourceSettings", "_known_scheme", "mask_url"]


class DatabaseRetry(_Model):
    """How long a database operation is re-run after a transient error (connection lost, server restart,
    deadlock, ``database is locked``); permanent errors fail at once."""

    max_attempts: int = Field(default=8, ge=1, le=50)
    max_retry_seconds: float = Field(default=120, gt=0)
    backoff_initial: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=10, gt=0)


URL_SCHEMES = {
    "postgres": "postgresql://", "postgresql+psycopg2": "postgresql:// (psycopg 3 is the installed driver)",
    "mysql": "mysql+pymysql://", "mariadb": "mariadb+pymysql://", "mysql+mysqldb": "mysql+pymysql://",
    "sqlite3": "sqlite:///",
}
"""Database URL schemes people write that SQLAlchemy cannot load here, and the one to write instead (the
installed drivers are psycopg 3 and PyMySQL; SQLAlchemy's own ``mysql://`` means the MySQLdb driver)."""


def _known_scheme(setting: str, url: SecretStr) -> SecretStr:
    scheme = url.get_secret_value().split("://", 1)[0].lower() if "://" in url.get_secret_value() else ""
    if scheme in URL_SCHEMES:
        raise ValueError(f"{setting}: {scheme}:// is not a scheme SQLAlchemy loads here; write {URL_SCHEMES[scheme]}")
    return url


class SourceSettings(_Model):
    url: SecretStr = SecretStr("sqlite:///.altcraft-sync/demo-shop.db")
    chunk_size: int = Field(default=4000, ge=1, le=1_000_000)
    """Rows per keyset page. Peak memory follows it (~14 MB per 1,000 orders with their lines in flight);
    4,000 keeps a full sync under 250 MB, and the per-chunk fixed cost (~16 ms) is ~1% of it."""
    safety_margin_seconds: float = Field(default=120, ge=0)
    lookback_seconds: float = Field(default=600, ge=0)
    timezone: str = "UTC"
    """Timezone of naive timestamp columns (most shop schemas store local or UTC wall time)."""
    retry: DatabaseRetry = Field(default_factory=DatabaseRetry)
    encoding: str = "utf-8"
    """How bytes columns (``VARBINARY``, ``BLOB``, ``bytea``) holding text are decoded. A value that does
    not decode quarantines its record, naming the column, with an escaped preview."""
    utf8_in_latin1: bool = False
    """MySQL/MariaDB tables declared latin1 that in fact hold UTF-8 bytes (old shops installed with the
    wrong charset): the server converts those bytes from its ``latin1``, which is cp1252, and ``Café``
    arrives as ``CafÃ©`` (``€`` as three characters). On, every text value that is such a double
    encoding is turned back (real latin1 text is left alone: it does not decode as UTF-8 once
    re-encoded). Off, such a value is sent as it is and a warning names its column and this setting."""
    first_sync_order: Literal["key", "cursor"] = "key"
    """How a cursor's first sync (no watermark yet, no backfill window) reads its table. ``key``: in
    primary-key order, the order most tables are stored in, so the database reads its pages in sequence
    and the ledger's key index is written in sequence too; each page moves a key position (a run that
    stops goes on after its last committed key) and the watermark is written once, after the last page.
    ``cursor``: ``(updated_at, key)`` order, the watermark moving with every page, as every later run
    reads; for a ``query`` whose key column no index serves (a computed key), where each key-ordered page
    would sort the whole result."""
    reader: Literal["auto", "rows"] = "auto"
    """How pages are read. ``auto``: in columns (Arrow) where this database has a columnar reader (ADBC on
    SQLite and PostgreSQL, ConnectorX on MySQL/MariaDB), each page cast to what the rows path gives; a
    page the reader refuses, or a database without one, is read as rows (one log line per stream says
    why). ``rows``: every page through SQLAlchemy's rows."""

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: SecretStr) -> SecretStr:
        return _known_scheme("source.url", value)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @property
    def first_sync_by_key(self) -> bool:
        """Whether a parent cursor's first sync reads in key order (``first_sync_order``)."""
        return self.first_sync_order == "key"

    def display_url(self) -> str:
        """The URL with its password masked, for logs and errors."""
        return mask_url(self.url.get_secret_value())


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ``***`` (safe for logs and error messages)."""
    from sqlalchemy.engine import make_url

    try:
        return mask(make_url(url).render_as_string(hide_password=True))  # mask: ?password=... too
    except Exception:  # an unparsable URL: show only its scheme
        return url.split(":", 1)[0] + "://***"
