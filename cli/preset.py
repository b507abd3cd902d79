"""``altcraft-sync init --preset P``: write a ready-made, annotated mapping for a shop platform to adjust."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.app import DEFAULT_CONFIG, app, console, fail

PRESETS = Path(__file__).with_name("presets")


def presets() -> list[str]:
    """The shipped presets (``cli/presets/<name>.yaml``)."""
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


@app.command()
def init(
    preset: Annotated[str, typer.Option(help="The shop platform: " + ", ".join(presets()) + ".")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the config.")] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a ready-made mapping for a shop platform (read-only SELECTs over its own tables) as an
    annotated config to adjust; then run `altcraft-sync check`."""
    source = PRESETS / f"{preset}.yaml"
    if not source.is_file():
        fail(f"--preset {preset}: no such preset (one of {', '.join(presets())})")
    if output.exists() and not force:
        fail(f"{output} exists; pass --force to overwrite it")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    console.print(f"wrote {output} from the {preset} preset: adjust the table prefix, sync.endpoint and the "
                  f"status maps, then run `altcraft-sync check --config {output}`", highlight=False)
