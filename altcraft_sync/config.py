"""The one validated configuration object of altcraft-sync.

A YAML file (``--config``, default ``altcraft-sync.yaml``) maps each stream (categories, products, SKUs,
orders with their lines) to the user's own tables and columns, or to a user-written SELECT. Values may
reference the environment as ``${VAR}`` or ``${VAR:-default}`` so secrets stay out of the file.

Static validation (this module) checks the shape: known Altcraft fields, required mappings, matching mode
fields, enum values of custom fields. Validation against the live database (tables, columns, status
values) is done by :mod:`connectors.shop_db` before anything is read or sent. Every error message names
the setting by its dotted path, e.g. ``streams.orders.columns.total_price``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from altcraft_sync import streams as registry
from altcraft_sync.catalogue import LINE_STATUSES, ORDER_STATUSES
from altcraft_sync.config_errors import did_you_mean, format_validation_error
from altcraft_sync.config_file import read_yaml
from altcraft_sync.durations import Duration, OptionalDuration
from altcraft_sync.errors import ConfigError
from altcraft_sync.interpolation import interpolate_tree
from altcraft_sync.masking import install_logging, register
from altcraft_sync.source_settings import DatabaseRetry, SourceSettings, _known_scheme, mask_url
from altcraft_sync.sources import ChildSource, OrdersStream, ProfilesStream, TableSource, _Model


class Streams(_Model):
    """``streams:``: one section per stream to sync, each validated by its spec's settings model
    (:mod:`altcraft_sync.streams`). A stream left out is not synced."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _by_spec(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        for name, section in data.items():
            spec = registry.find(name)
            if spec is None:
                raise ValueError(f"streams.{name}: not a stream (known: {', '.join(registry.names())})")
            out[name] = section if section is None or isinstance(section, TableSource) else \
                _validated(spec.source_model, section, f"streams.{name}")
        return out

    def section(self, name: str) -> TableSource | None:
        """The settings of stream ``name``, or None when it is not synced."""
        value: TableSource | None = (self.model_extra or {}).get(name)
        return value


class CustomField(_Model):
    """A root-level ``custom_fields`` definition sent with imports (docs/altcraft-api.md §2.5)."""

    external_id: str
    name: str
    entity_type: Literal["product", "sku", "order", "line_order"]
    required: bool = False
    value_type: Literal["unicode", "int", "float", "bool", "enum", "date"]
    default_value: Any = None
    enum_values: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _enum_needs_values(self) -> CustomField:
        if self.value_type == "enum" and not self.enum_values:
            raise ValueError("value_type 'enum' needs enum_values")
        return self


class CustomLineStatus(_Model):
    external_id: str
    name: str
    type: Literal["delivered", "canceled", "refunded", "in_process"]


class AltcraftSettings(_Model):
    """Client settings. ``token_block`` names a Prefect Secret block used when ``token`` is empty."""

    api_url: str = "http://127.0.0.1:8765/api/v1.1/"
    token: SecretStr = SecretStr("")
    token_block: str | None = None
    auth: Literal["body", "bearer"] = "body"
    allow_insecure_http: bool = False
    connect_timeout: float = Field(default=5, gt=0)
    read_timeout: float = Field(default=60, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=50)
    max_retry_seconds: float = Field(default=300, gt=0)
    backoff_initial: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=30, gt=0)
    max_retry_after_seconds: float = Field(default=3600, ge=0)
    """The longest ``Retry-After`` honoured (the client waits as long as Altcraft asks, even past
    ``backoff_max``); Altcraft asking for more ends the run with a line saying how long it asked for."""
    batch_size: int = Field(default=500, ge=1, le=10_000)
    max_body_bytes: int = Field(default=8_000_000, ge=1024)
    concurrency: int = Field(default=4, ge=1, le=32)
    requests_per_second: float = Field(default=20, gt=0)
    permanent_error_codes: list[int] = Field(default_factory=lambda: [400, 422])
    """Per-item error codes that mean the payload itself is wrong. Altcraft does not document its per-item
    codes, so this is a setting; records rejected with these are retried only once their data changes."""

    @model_validator(mode="after")
    def _safe_transport(self) -> AltcraftSettings:
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"api_url {self.api_url!r} is not an http(s) URL")
        if parts.scheme == "http" and not self.allow_insecure_http and not _is_loopback(parts.hostname):
            raise ValueError(
                "api_url uses plain http to a non-loopback host; use https or set allow_insecure_http: true"
            )
        if not self.api_url.endswith("/"):
            self.api_url += "/"
        return self


class StateSettings(_Model):
    url: SecretStr = SecretStr("sqlite:///.altcraft-sync/state.db")
    stale_lock_seconds: float = Field(default=600, gt=0)
    """A lock not refreshed for this long belongs to a dead run (every chunk commit refreshes it)."""
    retry: DatabaseRetry = Field(default_factory=DatabaseRetry)

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: SecretStr) -> SecretStr:
        return _known_scheme("state.url", value)

    def display_url(self) -> str:
        return mask_url(self.url.get_secret_value())


class SyncSettings(_Model):
    endpoint: str | None = None
    """Touchpoint additional ID used when the orders mapping has no ``endpoint`` column."""
    default_currency: str | None = None
    total_mismatch: Literal["quarantine", "warn"] = "quarantine"
    money_scale: int = Field(default=2, ge=0, le=6)
    """Decimal places a price may carry; more is quarantined rather than rounded."""
    failure_threshold: float = Field(default=0.05, ge=0, le=1)
    """A run ends Failed when more than this share of the records it tried did not go (rejected, invalid or
    held back as deferred by this run; the standing backlog is not counted again, see ``flows.outcome``)."""
    failure_floor: int = Field(default=10, ge=0)
    """...and only when more than this many did not go: one bad record in a quiet night's twelve is a
    warning (exit 1), not a failed night."""
    backlog_alert_records: int = Field(default=100, ge=1)
    """The backlog (quarantined, permanently rejected, retrying and deferred records) raises its own alert
    (a warning, exit 1, and a Prefect event) when it holds more than this many records..."""
    backlog_alert_hours: float = Field(default=72, gt=0)
    """...or when its oldest record has waited longer than this."""
    skip_triggers: bool = False
    max_name_length: int = Field(default=1000, ge=1)
    """Longest product, SKU or category name sent; a longer one is quarantined. Altcraft documents no
    bound for names (only ``description``: 1000 characters, api.md §2.2), so this is a setting; the
    default is the description's bound."""
    wait_for_dependencies: bool = True
    """Hold back (as *deferred*) an order whose line product, a SKU whose product, or a product whose
    category Altcraft does not hold yet, while it can still arrive (see ``max_defer``). Turn off for
    accounts that accept unknown ones."""
    max_defer: Duration = 86400.0
    """The longest a record waits for a dependency that can still arrive (in the shop, held back by the
    safety margin, failing, quarantined), counted from its first deferral; then it goes out as it is (and
    is reported rejected with Altcraft's reason if refused). A dependency that will never arrive (deleted
    in the shop, refused for good) holds nothing back. 0: never wait."""
    trigger_window: OptionalDuration = 86400.0
    """Orders whose change (their ``updated_at``) is older than this, measured on the shop database's
    clock, are sent with ``skip_triggers: true``, the first load included: history must not fire the
    trigger campaigns set on orders. ``off``: every order fires them (unless ``--skip-triggers``)."""
    heap_trim_above_mb: int = Field(default=236, ge=0)
    """While a run is open, freed C-heap pages are given back to the system (``malloc_trim``, every 50 ms)
    whenever the process's resident set is above this many MB; 0: every 50 ms regardless. Trimming below
    it would only make the next chunk fault the same pages in again: on the 1M-order PostgreSQL bench shop,
    1.59M page faults with 224 against 0.58M with 236 (2.5 s more system time), for peaks of 240 and 242
    MB. The default keeps the benchmark's full syncs under 250 MB (docs/performance.md, *Memory*); raise
    it where memory is plentiful, lower it on a small machine. glibc on Linux only."""
    map_workers: int = Field(default=0, ge=0, le=16)
    """Processes that fetch each chunk's children and map the chunk while the run reads and sends (started
    only after a cursor has read a few full pages, see ``engine.coordinator.WORKERS_AFTER_FULL_PAGES``); each
    opens its own connection to the shop database. 0 (the default) does both in the run's own process:
    a worker re-imports pandas and pandera (~230 MB) and, on 2 cores shared with the database and the
    network, did not shorten a full sync (1M orders, SQLite: 113 s with one worker, 105 s without)."""


class Config(_Model):
    source: SourceSettings = Field(default_factory=SourceSettings)
    altcraft: AltcraftSettings = Field(default_factory=AltcraftSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    custom_fields: list[CustomField] = Field(default_factory=list)
    custom_line_statuses: list[CustomLineStatus] = Field(default_factory=list)
    streams: Streams

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        """Checks across sections: each stream's columns against its Altcraft fields, custom fields against
        their definitions, and the orders' defaults and status maps."""
        for spec in registry.all_specs():
            src = self.streams.section(spec.name)
            if src is not None:
                self._check_stream(spec, src)
                self._check_owners(spec, src)
            if isinstance(src, OrdersStream):  # the settings model, not the stream's name, says what to check
                self._check_orders(f"streams.{spec.name}", src)
        return self

    def _check_owners(self, spec: registry.StreamSpec, src: TableSource) -> None:
        """A profile is found by the key its records (orders) use: the same modes, in the same order."""
        matching = getattr(src, "matching", None)
        modes = matching.modes if matching is not None else None
        for owner in spec.owned_by:
            people = self.streams.section(owner)
            if isinstance(people, ProfilesStream) and modes is not None and people.matching.modes != modes:
                raise ValueError(
                    f"streams.{owner}.matching: modes {people.matching.modes} differ from streams.{spec.name}.matching "
                    f"{modes}: a profile must be imported with the mode and fallback its {spec.name} are matched by"
                )

    def _check_stream(self, spec: registry.StreamSpec, src: TableSource) -> None:
        path = f"streams.{spec.name}"
        checks: list[tuple[str, TableSource, Any, str | None]] = [(path, src, spec.fields, spec.custom_field_type)]
        child: ChildSource | None = getattr(src, spec.child.name, None) if spec.child else None
        if spec.child and child is not None:
            checks.append((f"{path}.{spec.child.name}", child, spec.child.fields,
                           spec.child.custom_field_type or spec.custom_field_type))
        defined = {cf.external_id: cf.entity_type for cf in self.custom_fields}
        for where, table, fields, entity in checks:
            _check_fields(where, table.columns, fields)
            _check_html(where, table)
            for cf_id in table.custom_fields:
                if entity is None or defined.get(cf_id) != entity:
                    raise ValueError(
                        f"{where}.custom_fields.{cf_id}: no custom field with that external_id and entity_type "
                        f"{entity!r} is defined in custom_fields"
                    )

    def _check_orders(self, path: str, orders: OrdersStream) -> None:
        if "currency" not in orders.columns and not self.sync.default_currency:
            raise ValueError(f"{path}.columns.currency: map a column or set sync.default_currency")
        if "endpoint" not in orders.columns and not self.sync.endpoint:
            raise ValueError(f"{path}.columns.endpoint: map a column or set sync.endpoint")
        for shop, ac in orders.status_map.items():
            if ac not in ORDER_STATUSES:
                raise ValueError(
                    f"{path}.status_map.{shop}: {ac!r} is not an Altcraft order status "
                    f"({', '.join(ORDER_STATUSES)})"
                )
        lines = orders.lines
        line_statuses = set(LINE_STATUSES) | {s.external_id for s in self.custom_line_statuses}
        if "status" not in lines.columns and not lines.default_status:
            raise ValueError(f"{path}.lines.columns.status: map a column or set {path}.lines.default_status")
        if lines.default_status and lines.default_status not in line_statuses:
            raise ValueError(f"{path}.lines.default_status: {lines.default_status!r} is not a line status")
        for shop, ac in lines.status_map.items():
            if ac not in line_statuses:
                raise ValueError(
                    f"{path}.lines.status_map.{shop}: {ac!r} is neither a built-in line status "
                    "nor a custom_line_statuses external_id"
                )

    def enabled_streams(self) -> list[str]:
        """The configured streams, in sync order."""
        return [s.name for s in registry.all_specs() if self.streams.section(s.name) is not None]


def _validated(model: type[TableSource], section: Any, path: str) -> TableSource:
    """A stream's section validated by its spec's model; the first problem becomes one line naming its
    dotted path (the section's own model raises nothing pydantic could place under ``streams``)."""
    try:
        return model.model_validate(section)
    except ValidationError as err:
        first = err.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "not a known setting" + did_you_mean(list(first["loc"]), model)
        head, sep, rest = msg.partition(": ")
        inner = [head] if sep and _SUB_SETTING.match(head) else []  # a model check naming its own setting
        where = ".".join([path, *(str(p) for p in first["loc"]), *inner])
        raise ValueError(f"{where}: {rest if inner else msg}") from None


_SUB_SETTING = re.compile(r"^[a-z_]+(\.[a-z0-9_]+)*$")
"""A model validator's message may start with the setting it is about (``fallback.0: ...``)."""


def _check_html(path: str, section: TableSource) -> None:
    """``html_unescape`` names text this section reads: a mapped field, a custom field, or a setting that
    names a column (an order line's ``product_name``)."""
    readable = set(section.columns) | set(section.custom_fields) | {s for s, _, _ in section.extra_columns()}
    for i, name in enumerate(section.html_unescape):
        if name not in readable:
            raise ValueError(f"{path}.html_unescape.{i}: {name!r} is not read by this section (its columns, "
                             f"custom_fields{', product_name' if path.endswith('.lines') else ''})")


def _check_fields(path: str, columns: dict[str, str], fields: Any) -> None:
    for name in columns:
        if name not in fields:
            raise ValueError(f"{path}.columns.{name}: not an Altcraft field (known: {', '.join(fields)})")
    for name, required in fields.items():
        if required and name not in columns:
            raise ValueError(f"{path}.columns.{name}: required mapping is missing")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_config(data: dict[str, Any], origin: str = "<dict>") -> Config:
    """The validated config; its secrets join the process's masker before anything can print them."""
    _register_secrets(data)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, origin, Config)) from None
    register(cfg.altcraft.token.get_secret_value(),
             urls=[cfg.source.url.get_secret_value(), cfg.state.url.get_secret_value()])
    return cfg


def _register_secrets(data: dict[str, Any]) -> None:
    """The raw settings' token and URLs, before validation: an invalid config's error must not show them."""
    def at(section: str, key: str) -> str:
        part = data.get(section)
        value = part.get(key) if isinstance(part, dict) else None
        return value if isinstance(value, str) else ""

    install_logging()
    register(at("altcraft", "token"), urls=[at("source", "url"), at("state", "url")])


def load_config(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read, interpolate and validate the YAML config.

    Environment overrides of the most common settings (``SHOP_DB_URL``, ``ALTCRAFT_API_URL``,
    ``ALTCRAFT_TOKEN``, ``SYNC_STATE_URL``) win over the file, so a deployment can keep one file for
    all environments.
    """
    env = dict(os.environ if environ is None else environ)
    cfg_path = Path(path or env.get("ALTCRAFT_SYNC_CONFIG") or "altcraft-sync.yaml")
    if not cfg_path.exists():
        raise ConfigError(f"config file {cfg_path} not found (pass --config or set ALTCRAFT_SYNC_CONFIG)")
    raw = read_yaml(cfg_path)
    raw = interpolate_tree(raw, env)
    overrides = {
        ("source", "url"): env.get("SHOP_DB_URL"),
        ("altcraft", "api_url"): env.get("ALTCRAFT_API_URL"),
        ("altcraft", "token"): env.get("ALTCRAFT_TOKEN"),
        ("state", "url"): env.get("SYNC_STATE_URL"),
    }
    for (section, key), value in overrides.items():
        if value:
            raw.setdefault(section, {})[key] = value
    return parse_config(raw, str(cfg_path))


def resolve_token(settings: AltcraftSettings) -> SecretStr:
    """The API token: the configured value, else the named Prefect Secret block."""
    if settings.token.get_secret_value():
        return settings.token
    if settings.token_block:
        try:
            from prefect.blocks.system import Secret

            block: Any = Secret.load(settings.token_block)  # a sync call: typed as block-or-coroutine
            token = str(block.get())
            register(token)
            return SecretStr(token)
        except Exception as err:  # the block API raises several types; the name is what the user needs
            raise ConfigError(
                f"altcraft.token_block: could not load Prefect Secret block {settings.token_block!r} "
                f"({type(err).__name__})"
            ) from None
    raise ConfigError("altcraft.token: no API token (set ALTCRAFT_TOKEN or altcraft.token_block)")
