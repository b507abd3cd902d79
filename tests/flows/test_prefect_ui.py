"""Issue 27: the Prefect UI speaks the operator's language. Parameters with titles and descriptions (no
nullable fields, which the run form shows as ``Property is type "None"``), run names that say what a run
does, a stream task that fails the run's bar ends Failed (and carries no tags), and a summary with checks in
words."""

from __future__ import annotations

import json

import pytest
import yaml
from prefect.utilities.callables import parameter_schema

from flows.backfill import backfill
from flows.sync import nightly_sync, retry_pending
from flows.verify_flow import verify_flow, verify_run_name
from tests.conftest import TOKEN
from tests.helpers import build_shop, run_artifacts, shop_config


@pytest.mark.parametrize("flow", [nightly_sync, retry_pending, verify_flow, backfill], ids=lambda f: f.name)
def test_every_flow_parameter_has_a_title_and_a_description(flow):
    schema = parameter_schema(flow.fn).model_dump()
    assert "null" not in json.dumps(schema)
    for name, prop in schema["properties"].items():
        assert prop["title"] != name and prop.get("description"), (name, prop)


def test_a_run_with_warnings_is_completed_with_a_message_that_says_so():
    from flows.sync import as_state
    from runner.runs import RunOutcome

    state = as_state(RunOutcome(True, "orders: 11 delivered", {}, ["1 of 12 records of this run (8.3%) did not go"]))
    assert state.is_completed() and state.message == "completed with warnings: 1 of 12 records of this run (8.3%) did not go"
    assert as_state(RunOutcome(True, "orders: 12 delivered", {})).message == "orders: 12 delivered"


def test_a_verify_run_is_named_after_what_it_compares():
    assert verify_run_name((), False, 0) == "verify all streams"
    assert verify_run_name(("orders",), True, 500) == "verify and repair orders (sample of 500)"


@pytest.mark.prefect
def test_a_failed_stream_task_is_failed_and_the_summary_reads(tmp_path, emulator, prefect_harness):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=150)
    cfg = shop_config(tmp_path, url, emulator, TOKEN, failure_threshold=0.01)
    raw = yaml.safe_load(cfg.read_text())
    raw["sync"]["failure_floor"] = 2  # the demo shop's planted invalid orders pass it; one product does not
    cfg.write_text(yaml.safe_dump(raw))
    state = nightly_sync(config_path=str(cfg), return_state=True)
    assert state.is_failed() and "did not go" in state.message and "altcraft-sync quarantine" in state.message

    async def tasks() -> tuple[dict[str, str], list[str]]:
        async with get_client() as client:
            only = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            runs = await client.read_task_runs(flow_run_filter=only)
            return {r.name: r.state.type.value for r in runs}, [t for r in runs for t in r.tags]

    states, tags = asyncio.run(tasks())
    assert states["sync orders"] == "FAILED" and states["sync categories"] == "COMPLETED", states
    # no tags on the stream tasks: each tag costs a concurrency-slot request to the server (flows/sync.py)
    assert tags == []
    summary = next(a for a in run_artifacts(state.state_details.flow_run_id) if a["type"] == "markdown")["data"]
    assert "str_length(" not in summary and "longer than 1000 characters" in summary
    assert '"field": null' not in summary
    table = next(a for a in run_artifacts(state.state_details.flow_run_id) if a["type"] == "table")["data"]
    assert {"retried", "deleted", "watermark before", "watermark after", "lag (s)"} <= set(json.loads(table)[0])
