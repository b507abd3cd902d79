"""The ``verify`` flow: :mod:`runner.verify` as a Prefect run (deployable, e.g. weekly), with a table and a
summary artifact. It fails when Altcraft differs from the shop and ``repair`` is off, so an automation on
failed runs tells someone."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from altcraft_sync.errors import SyncError, one_line
from altcraft_sync.masking import mask, mask_tree
from altcraft_sync.streams import StreamName
from flows.sync import CONFIG_PARAM, param
from runner.runtime import open_runtime
from runner.verify import COLUMNS, VerifyStats, verify_streams


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


def verify_run_name(streams: Any, repair: bool, sample: int) -> str:
    """``verify all streams``, ``verify and repair orders``, ``verify skus (sample of 500)``: the run list
    says what each run compared."""
    what = ", ".join(streams) if streams else "all streams"
    return f"verify {'and repair ' if repair else ''}{what}" + (f" (sample of {sample})" if sample else "")


def _verify_name() -> str:
    p = flow_run.parameters or {}
    return verify_run_name(p.get("streams"), bool(p.get("repair")), int(p.get("sample") or 0))


@flow(name="verify", flow_run_name=_verify_name, validate_parameters=True)
def verify_flow(
    config_path: str = CONFIG_PARAM,
    streams: tuple[StreamName, ...] = param((), "Streams", "Only these streams; leave empty for every stream "
                                                          "(categories cannot be listed: reported as not verifiable)"),
    repair: bool = param(False, "Repair", "Re-send what differs and delete what altcraft-sync sent that the shop "
                                          "no longer has"),
    sample: int = param(0, "Sample size", "Compare only this many random delivered records; 0 compares all"),
) -> State:
    """Compare what Altcraft holds with the ledger and the shop, field by field; ``repair`` re-sends the
    differing records and deletes what altcraft-sync sent that the shop no longer has. A stream Altcraft
    has no list method for (categories) is reported as not verifiable."""
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
                                 streams=list(streams or []) or None, repair=repair, sample=sample or None)
    except (SyncError, Exception) as err:
        log.error("%s", one_line(err, run_id))
        return Failed(message=one_line(err, run_id))
    finally:
        runtime.close()
    rows = [{"stream": n, **{c: getattr(s, c) for c in COLUMNS}} for n, s in results.items()]
    create_table_artifact(mask_tree(rows), key="verify-streams", description="verify: per stream")
    create_markdown_artifact(mask(verify_markdown(results, repair)), key="verify-summary", description="verify: summary")
    figures = {n: s.figures() for n, s in results.items()}
    left = sum(s.differences for s in results.values()) if not repair else 0
    message = "; ".join(f"{n}: {s.ok} ok, {s.differences} differences" for n, s in results.items())
    if left:
        return Failed(message=f"Altcraft differs from the shop: {message}", data=figures)
    return Completed(message=message or "nothing to verify", data=figures)
