"""``altcraft-sync init --preset P``: write a ready-made, annotated mapping for a shop platform to adjust."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from cli.app import DEFAULT_CONFIG, app, console, fail

PRESETS = Path(__file__).with_name("presets")
PREFIX_MARK = "{{table_prefix}}"
# A table prefix is a SQL identifier fragment: it is pasted into every query, so nothing else may pass.
PREFIX_SHAPE = re.compile(r"[A-Za-z0-9_]{0,32}")


def presets() -> list[str]:
    """The shipped presets (``cli/presets/<name>.yaml``)."""
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def default_prefix(text: str) -> str | None:
    """The platform's default table prefix, from the preset's first line ``#! table_prefix: wp_`` (None when
    the preset's tables have a fixed name)."""
    first = text.split("\n", 1)[0]
    return first.split(":", 1)[1].strip() if first.startswith("#! table_prefix:") else None


def render(preset: str, table_prefix: str | None = None) -> str:
    """The preset's text with its table prefix filled in (the platform's default unless one is given)."""
    text = (PRESETS / f"{preset}.yaml").read_text(encoding="utf-8")
    default = default_prefix(text)
    if default is None:
        if table_prefix is not None:
            raise ValueError(f"--table-prefix: the {preset} preset's tables have fixed names")
        return text
    prefix = default if table_prefix is None else table_prefix
    if not PREFIX_SHAPE.fullmatch(prefix):
        raise ValueError(f"--table-prefix {prefix!r}: letters, digits and '_' only, at most 32")
    body = text.split("\n", 1)[1]
    return body.replace(PREFIX_MARK, prefix)


@app.command()
def init(
    preset: Annotated[str, typer.Option(help="The shop platform: " + ", ".join(presets()) + ".")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the config.")] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    table_prefix: Annotated[str | None, typer.Option(
        "--table-prefix", help="The shop's table prefix (WordPress $table_prefix, OpenCart DB_PREFIX, Magento's "
                               "table_prefix); the platform's default when omitted.")] = None,
) -> None:
    """Write a ready-made mapping for a shop platform (read-only SELECTs over its own tables) as an
    annotated config to adjust; then run `altcraft-sync check`."""
    source = PRESETS / f"{preset}.yaml"
    if not source.is_file():
        fail(f"--preset {preset}: no such preset (one of {', '.join(presets())})")
    if (output.exists() or output.is_symlink()) and not force:
        fail(f"{output} exists; pass --force to overwrite it")
    try:
        text = render(preset, table_prefix)
    except ValueError as exc:
        fail(str(exc))
    output.parent.mkdir(parents=True, exist_ok=True)
    replaced = ""
    if output.is_symlink():  # replace the link itself: writing through it would overwrite what it points to
        replaced = f" (replacing the link to {os.readlink(output)}, which is left as it was)"
        output.unlink()
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {output} from the {preset} preset{replaced}: adjust sync.endpoint and the status maps, then run "
                  f"`altcraft-sync check --config {output}`", highlight=False)
