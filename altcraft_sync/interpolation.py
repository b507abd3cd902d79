"""``${VAR}`` and ``${VAR:-default}`` in the settings file, so secrets stay out of it. Only parsed string
values are interpolated: comments are never read and an environment value cannot inject YAML structure."""

from __future__ import annotations

import os
import re
from typing import Any

from altcraft_sync.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}``; an unset variable with no default is a config error."""
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is referenced in the config but not set")

    return _ENV_REF.sub(sub, text)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    """Interpolate ``${VAR}`` in parsed string values only: comments are never touched and an
    environment value can never inject YAML structure."""
    if isinstance(node, str):
        return interpolate_env(node, env)
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    return node
