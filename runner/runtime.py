"""Opening a run: config -> shop source -> state store -> Altcraft client, each failure a one-line
``SyncError`` that names what to fix. Flows and the CLI share this; nothing here knows about Prefect."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from altcraft_sync import streams as registry
from altcraft_sync.config import Config, load_config, resolve_token
from altcraft_sync.cursor import Cursor
from connectors.altcraft import AltcraftClient
from connectors.shop_db import ShopSource
from connectors.state import StateStore
from runner.memory import COLLECTOR, TRIMMER, CollectorTuning, HeapTrimmer, return_freed_buffers


@dataclass
class Runtime:
    config: Config
    source: ShopSource
    state: StateStore
    client: AltcraftClient | None
    warnings: list[str] = field(default_factory=list)
    trimmer: HeapTrimmer | None = None
    """Gives freed heap pages back while the run is open (``runner.memory``); released by ``close``."""
    collector: CollectorTuning | None = None
    """Keeps the cyclic GC off the libraries while the run is open (``runner.memory``); released by ``close``."""

    def close(self) -> None:
        trimmer, self.trimmer = self.trimmer, None
        if trimmer is not None:
            trimmer.release(trim_above(self.config))
        collector, self.collector = self.collector, None
        if collector is not None:
            collector.release()
        if self.client is not None:
            self.client.close()
        self.source.close()
        self.state.close()


def _value_check_ranges(cfg: Config, source: ShopSource, state: StateStore) -> dict[str, Cursor | None] | None:
    """Where the status check must look: from each cursor's lookback start (what this run can read), or
    everywhere when a cursor has no watermark yet."""
    out: dict[str, Cursor | None] = {}
    for stream, entity, *_ in source.status_checks():
        wm = state.get_watermark(stream, entity)
        if wm is None:
            return None
        out[entity] = source.lookback_start(entity, wm, cfg.source.lookback_seconds)
    return out


def open_runtime(config: Config | str | Path | None, *, need_client: bool = True) -> Runtime:
    """Validate everything before anything is read or sent: the config file, the live shop database
    against the mapping, the state database, and (unless ``need_client`` is false) the token."""
    cfg = config if isinstance(config, Config) else load_config(config)
    return_freed_buffers()
    source = ShopSource(cfg)
    try:
        warnings = source.bind()
        state = StateStore(cfg.state)
        source.check_values(_value_check_ranges(cfg, source, state))
    except Exception:
        source.close()
        raise
    client = AltcraftClient(cfg.altcraft, resolve_token(cfg.altcraft)) if need_client else None
    TRIMMER.hold(trim_above(cfg))
    COLLECTOR.hold()
    return Runtime(cfg, source, state, client, warnings, TRIMMER, COLLECTOR)


def trim_above(cfg: Config) -> int:
    """``sync.heap_trim_above_mb`` in bytes: the resident set above which a run gives freed heap back."""
    return cfg.sync.heap_trim_above_mb << 20


def confirm_token(client: AltcraftClient, streams: list[str] | tuple[str, ...] = ()) -> None:
    """One read (the first record of a list method) that only Altcraft can answer: a revoked token, a
    lost role or an unreachable Altcraft raise their one-line ``AltcraftError``. ``check`` asks it, and so
    does a run that had nothing to send: otherwise a quiet night reports "completed" without Altcraft
    having said a word, and a revoked token shows only on the first night with changes. The method is
    one of ``streams``' (the roles the run needs), else the first stream's that has one."""
    specs = [registry.get(s) for s in streams] + list(registry.all_specs())
    method = next(spec.list_method for spec in specs if spec.list_method)
    next(client.list_records(method, limit=1), None)

