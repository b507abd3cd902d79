"""Reading the settings file: YAML that refuses what a config never needs.

A config is a few kilobytes of mappings and lists. A file past :data:`MAX_CONFIG_BYTES` is refused before
it is parsed, and YAML aliases (``*name``) are refused while it is parsed: a few nested aliases expand to
billions of nodes (an alias bomb) once the settings are walked, which took ``check`` past 120 s and
1.2 GB. Every refusal is one :class:`~altcraft_sync.errors.ConfigError` line naming the file and place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from altcraft_sync.errors import ConfigError

MAX_CONFIG_BYTES = 1024 * 1024


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with an alias refused where it is met (before anything is expanded)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in the config; "
                                              "write the value out", self.peek_event().start_mark)
        return super().compose_node(parent, index)


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping, or a one-line ``ConfigError``."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config {path}: {size} bytes is more than a config needs "
                          f"(at most {MAX_CONFIG_BYTES}); is this the right file?")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoAliasLoader) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        why = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config {path}:{where} is not valid YAML: {why}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path}: the top level must be a mapping")
    return raw
