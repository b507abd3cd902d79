"""A real Prefect server, deployments from prefect.yaml, a process worker, and the backfill deployment
run through it against the emulator; everything read back through the Prefect REST API."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN
from tests.helpers import build_shop, shop_config

pytestmark = pytest.mark.server
ROOT = Path(__file__).parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
ORDERS = 1000
"""Enough that the demo shop's planted invalid rows stay under the demo mapping's 5% failure threshold (the
nightly deployment runs with it, as the README's recipe does)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = env["PREFECT_API_URL"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("prefect server did not start: " + (tmp_path / "server.log").read_text()[-2000:])
    yield env, api
    os.killpg(proc.pid, 9)
    proc.wait()


def run(cmd: list[str], env: dict[str, str], **kw) -> str:
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, f"{cmd}: {out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def wait_for(api: str, run_id: str, seconds: float = 300) -> dict:
    deadline = time.monotonic() + seconds
    state: dict = {}
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/flow_runs/{run_id}").json()["state"] or {}
        if state.get("type") in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        time.sleep(2)
    return state


def test_backfill_deployment_runs_through_a_worker(server, tmp_path, emulator):
    env, api = server
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=ORDERS)
    # the whole demo mapping (people included), as the nightly deployment's default altcraft-sync.yaml has it
    cfg = shop_config(tmp_path, url, emulator, TOKEN, people=True)
    run([PREFECT, "work-pool", "create", "altcraft-sync", "--type", "process"], env)
    deployed = run([PREFECT, "--no-prompt", "deploy", "--all"], env)
    assert "nightly-sync" in deployed and "backfill" in deployed
    deployments = httpx.post(f"{api}/deployments/filter", json={"limit": 10, "offset": 0}).json()
    by_name = {d["name"]: d for d in deployments}
    assert by_name["nightly-sync"]["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    assert by_name["nightly-sync"]["schedules"][0]["schedule"]["timezone"] == "Europe/Moscow"
    assert (
        by_name["backfill"]["parameter_openapi_schema"]["definitions"]["BackfillParams"]["properties"]["skip_triggers"]["default"]
        is True
    )

    params = {"params": {"since": "2024-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z", "window_days": 730},
              "config_path": str(cfg)}
    out = run([PREFECT, "deployment", "run", "backfill/backfill", "--params", json.dumps(params)], env)
    run_id = next(line.split()[-1] for line in out.splitlines() if "UUID" in line)
    worker_log = open(tmp_path / "worker.log", "w")
    # the worker's environment as the README's recipe sets it: every variable the flows read
    worker_env = {**env, "ALTCRAFT_API_URL": emulator.url, "ALTCRAFT_TOKEN": TOKEN, "SHOP_DB_URL": url,
                  "SYNC_STATE_URL": f"sqlite:///{tmp_path}/prefect-state.db"}
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "altcraft-sync", "--limit", "3"], env=worker_env,
                              cwd=ROOT, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for(api, run_id)["type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
        # fan-out: one child flow run per window, through the deployment, bounded by its concurrency limit
        fan = {"params": {"since": "2024-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z", "window_days": 1100,
                          "fan_out": True, "resend": True}, "config_path": str(cfg)}
        out = run([PREFECT, "deployment", "run", "backfill/backfill", "--params", json.dumps(fan)], env)
        parent_id = next(line.split()[-1] for line in out.splitlines() if "UUID" in line)
        assert wait_for(api, parent_id)["type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
        runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 50, "offset": 0, "sort": "START_TIME_ASC"}).json()
        children = [r for r in runs if r["id"] not in (run_id, parent_id)]
        assert len(children) == 2 and all(r["state"]["type"] == "COMPLETED" for r in children)
        assert all(r["parameters"]["params"]["fan_out"] is False for r in children)
        # the recipe's last step: the nightly deployment with its default parameters (config_path
        # altcraft-sync.yaml, the demo mapping) reads everything else from the worker's environment
        out = run([PREFECT, "deployment", "run", "nightly-sync/nightly-sync"], env)
        nightly_id = next(line.split()[-1] for line in out.splitlines() if "UUID" in line)
        assert wait_for(api, nightly_id)["type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
        nightly = httpx.get(f"{api}/flow_runs/{nightly_id}").json()
        assert re.fullmatch(r"nightly-sync \d{4}-\d{2}-\d{2} \d{2}:\d{2}", nightly["name"]), nightly["name"]
        assert (tmp_path / "prefect-state.db").exists()
    finally:
        os.killpg(worker.pid, 9)
        worker.wait()

    artifacts = httpx.post(f"{api}/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [run_id]}}, "limit": 50, "offset": 0, "sort": "CREATED_DESC"}).json()
    by_type = {a["type"]: a for a in artifacts}
    assert {"table", "markdown", "progress"} <= set(by_type)
    rows = {r["stream"]: r for r in json.loads(by_type["table"]["data"])}
    assert rows["orders"]["delivered"] == len(emulator.store.orders) > 0
    assert rows["orders"]["delivered"] + rows["orders"]["invalid"] == rows["orders"]["extracted"] == ORDERS
    assert rows["skus"]["delivered"] == len(emulator.store.skus)
    assert by_type["progress"]["data"] == 100
    assert "backfill 2024-01-01..2030-01-01" in by_type["markdown"]["data"]
    assert all(emulator.skip_triggers.values())  # historical orders: no trigger emails

    # the user's command against a running API: the run goes through Prefect, and ends as a local one does
    # (the figures table, the last line, the exit code: 1, the demo shop's planted invalid rows wait)
    cli = str(Path(sys.executable).with_name("altcraft-sync"))
    out = subprocess.run([cli, "sync", "--config", str(cfg)], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert "altcraft-sync run" in out.stdout and "nightly-sync" in out.stdout + out.stderr, out.stdout + out.stderr
    assert "backlog: " in out.stderr and "quarantined" in out.stderr, out.stderr  # read back after the flow run

    # against a running API the command line does not bind the source first (the flow does it at once): a
    # mapping's typo still ends the run with the one-line error that names the setting, and exit code 2
    import yaml

    raw = yaml.safe_load(cfg.read_text())
    raw["streams"]["categories"]["table"] = "categoriez"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = subprocess.run([cli, "sync", "--config", str(bad)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "streams.categories.table: table 'categoriez' does not exist" in out.stdout + out.stderr, out.stdout + out.stderr
    assert TOKEN not in out.stdout + out.stderr
