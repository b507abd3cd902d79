"""The ``backfill`` flow: re-send a range of history, safely, resumably and visibly.

- Parameters are one typed model (:class:`BackfillParams`), which the Prefect UI renders as a form.
- The range ``(since, until]`` of ``updated_at`` is split into windows; each window's progress is kept in
  the state database, so a crashed backfill resumes at the next unfinished window and re-running a
  finished one is a no-op unless ``force``.
- The nightly watermark is never read or moved; the ledger and quarantine are shared, as are the stream
  locks and the per-process rate limit, so a backfill and a nightly run never write one stream at once.
- ``skip_triggers`` defaults to true: customers get no emails for old orders.
- ``fan_out`` submits one flow run per window through the ``backfill`` deployment (bounded by its
  concurrency limit) for histories that outgrow one machine; windows of one stream still write one at a
  time (they wait for the stream lock): two writers of one record could leave the ledger claiming a
  version Altcraft does not hold.
"""

from __future__ import annotations

import time
from typing import cast

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel

from altcraft_sync.wording import plural
from flows.sync import CONFIG_PARAM, PrefectHost, as_state, param
from runner.runs import guarded
from runner.windows import BackfillParams, backfill_run_name, params_from_cli, parse_day, run_windows

__all__ = ["BackfillParams", "backfill", "backfill_run_name", "params_from_cli", "parse_day"]


def _backfill_name() -> str:
    p = (flow_run.parameters or {}).get("params") or {}
    if isinstance(p, BaseModel):  # in-process calls pass the model, API runs a dict
        p = p.model_dump()
    return backfill_run_name(p.get("since"), p.get("until"), p.get("streams"), bool(p.get("dry_run")))


BACKFILL_PARAM = param(..., "Backfill", "The range of history to re-send, and how")


@flow(name="backfill", flow_run_name=_backfill_name, validate_parameters=True)
def backfill(params: BackfillParams = BACKFILL_PARAM, config_path: str = CONFIG_PARAM) -> State:
    """Re-send ``(since, until]`` window by window, without touching the nightly watermark."""
    if params.fan_out and not params.dry_run:
        return _fan_out(params, config_path)
    host = PrefectHost()
    return as_state(guarded(lambda rt: run_windows(rt, host, params), config_path, host, need_client=not params.dry_run))


def _fan_out(params: BackfillParams, config_path: str) -> State:
    """One child flow run per window through the ``backfill`` deployment; waits for all of them."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    log = get_run_logger()
    children = []
    for start, end in params.windows():
        child = params.model_copy(update={"since": start, "until": end, "fan_out": False, "window_days": params.window_days})
        run = run_deployment("backfill/backfill", parameters={"params": child.model_dump(mode="json"),
                                                              "config_path": config_path}, timeout=0, as_subflow=True)
        run = cast(FlowRun, run)  # called from a sync flow: a FlowRun, not the coroutine the typing also allows
        children.append(run)
        log.info("submitted window %s..%s as flow run %s", start, end, run.name)
    failed = []
    with get_client(sync_client=True) as client:  # prefect.flow_runs.wait_for_flow_run is async in 3.8
        for run in children:
            final = client.read_flow_run(run.id)
            while not (final.state and final.state.is_final()):
                time.sleep(5)
                final = client.read_flow_run(run.id)
            if not final.state.is_completed():
                failed.append(f"{final.name}: {final.state.message}")
    if failed:
        return Failed(message=f"{len(failed)} of {plural(len(children), 'window')} failed: " + "; ".join(failed)[:500])
    return Completed(message=f"{plural(len(children), 'window')} completed")
