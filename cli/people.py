"""``forget``: deleting a person in Altcraft, explicitly (a sync never deletes a profile)."""

from __future__ import annotations

from typing import Annotated

import typer

from altcraft_sync.errors import SyncError
from altcraft_sync.wording import plural
from cli.app import DEFAULT_CONFIG, ConfigOpt, app, console, fail


@app.command()
def forget(
    customer: Annotated[str, typer.Option("--customer", help="The shop's customer id, or a profile key "
                                          "(email:<address>, phone:<number>) for a guest.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")] = False,
) -> None:
    """Delete a person's profile in Altcraft and the orders altcraft-sync sent for it (an erasure request).
    Lists first; with --dry-run that is all."""
    from runner.forget import carry_out, plan_forget
    from runner.runtime import open_runtime

    try:
        runtime = open_runtime(config, need_client=not dry_run)
        try:
            plan = plan_forget(runtime.config, runtime.state, customer)
            verb = "would delete" if dry_run else "deleting"
            console.print(f"{customer}: {verb} {plural(len(plan.lines()), 'record')}", highlight=False)
            for line in plan.lines():
                console.print(f"  {line}", highlight=False)
            if not dry_run:
                assert runtime.client is not None
                carry_out(runtime.config, runtime.state, runtime.client, plan)
                for entity, ext, outcome in plan.done:
                    console.print(f"  {entity} {ext}: {outcome}", highlight=False)
        finally:
            runtime.close()
    except SyncError as err:
        fail(str(err))
    if any(not outcome.startswith("deleted") for _, _, outcome in plan.done):
        raise typer.Exit(1)
