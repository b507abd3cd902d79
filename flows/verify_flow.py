"""The ``verify`` flow: :mod:`runner.verify` as a Prefect run (deployable, e.g. weekly), with a table and a
summary artifact. It fails when Altcraft differs from the shop and ``repair`` is off, so an automation on
failed runs tells someone."""

from __future__ import annotations

import uuid
from typing import Literal

import orjson
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from altcraft_sync.errors import SyncError, one_line
from runner.runtime import open_runtime
from runner.verify import COLUMNS, VerifyStats, verify_streams

VerifyStream = Literal["products", "skus", "customers", "guests", "orders"]


def verify_markdown(results: dict[str, VerifyStats], repair: bool) -> str:
    lines = ["# verify: Altcraft against the shop", "", "| stream | " + " | ".join(COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, s in results.items():
        lines.append(f"| {name} | " + " | ".join(str(getattr(s, c)) for c in COLUMNS) + " |")
    for name, s in results.items():
        if s.note:
            lines += ["", f"- {name}: {s.note}"]
        if s.fields:
            lines += ["", f"## {name}: fields that differ", ""] + [f"- `{f}`: {n}" for f, n in sorted(s.fields.items())]
        for kind, items in s.samples.items():
            lines += ["", f"## {name}: sample of {kind}", "", "```json",
                      orjson.dumps(items, option=orjson.OPT_INDENT_2).decode(), "```"]
    if not repair and any(s.differences for s in results.values()):
        lines += ["", "Run `altcraft-sync verify --repair` (or this deployment with repair) to re-send and delete."]
    return "\n".join(lines)


@flow(name="verify", flow_run_name="verify {streams}", validate_parameters=True)
def verify_flow(config_path: str = "altcraft-sync.yaml", streams: list[VerifyStream] | None = None,
                repair: bool = False, sample: int | None = None) -> State:
    """Compare what Altcraft holds with the ledger and the shop, field by field; ``repair`` re-sends the
    differing records and deletes what altcraft-sync sent that the shop no longer has."""
    log = get_run_logger()
    run_id = str(flow_run.get_id() or uuid.uuid4())
    try:
        runtime = open_runtime(config_path, need_client=True)
    except Exception as err:
        log.error("%s", one_line(err, run_id))
        return Failed(message=one_line(err, run_id))
    try:
        assert runtime.client is not None
        results = verify_streams(runtime.config, runtime.source, runtime.state, runtime.client, run_id=run_id,
                                 streams=list(streams or []) or None, repair=repair, sample=sample)
    except (SyncError, Exception) as err:
        log.error("%s", one_line(err, run_id))
        return Failed(message=one_line(err, run_id))
    finally:
        runtime.close()
    rows = [{"stream": n, **{c: getattr(s, c) for c in COLUMNS}} for n, s in results.items()]
    create_table_artifact(rows, key="verify-streams", description="verify: per stream")
    create_markdown_artifact(verify_markdown(results, repair), key="verify-summary", description="verify: summary")
    figures = {n: s.figures() for n, s in results.items()}
    left = sum(s.differences for s in results.values()) if not repair else 0
    message = "; ".join(f"{n}: {s.ok} ok, {s.differences} differences" for n, s in results.items())
    if left:
        return Failed(message=f"Altcraft differs from the shop: {message}", data=figures)
    return Completed(message=message or "nothing to verify", data=figures)
