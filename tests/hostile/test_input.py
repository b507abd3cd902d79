"""Hostile input outside the rows: a YAML alias bomb or an oversized config, and a second concurrent sync on a
PostgreSQL state database (the refusal names the run that holds the lock)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from altcraft_sync.config import StateSettings, load_config
from altcraft_sync.config_file import MAX_CONFIG_BYTES
from altcraft_sync.errors import ConfigError, StreamLocked
from connectors.state import StateStore
from tests.hostile.conftest import ROOT

BOMB = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
) + "\n"


def test_a_yaml_alias_bomb_is_refused_in_one_line_under_a_second(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"line 2, column \d+ is not valid YAML: YAML aliases \(\*name\) are not allowed"):
        load_config(path)
    assert time.perf_counter() - started < 1.0
    run = subprocess.run([sys.executable, "-m", "cli.main", "check", "--config", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "YAML aliases" in lines[0], run.stdout + run.stderr


def test_a_config_file_past_the_size_cap_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("# " + "x" * MAX_CONFIG_BYTES + "\nstreams: {}\n")
    with pytest.raises(ConfigError, match="more than a config needs"):
        load_config(path)


@pytest.mark.postgres
def test_a_second_sync_on_postgresql_is_told_which_run_holds_the_lock():
    url = os.environ.get("SHOP_TEST_PG_URL")
    if not url:
        pytest.skip("set SHOP_TEST_PG_URL to run against PostgreSQL")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a state schema of its own in the test database
        conn.execute(sa.text("DROP SCHEMA IF EXISTS hostile_state CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA hostile_state"))
    state_url = url + ("&" if "?" in url else "?") + "options=-csearch_path%3Dhostile_state"
    first = StateStore(StateSettings(url=state_url))
    second = StateStore(StateSettings(url=state_url))
    try:
        first.acquire_lock("orders", "nightly-1@another-host:4242")
        with pytest.raises(StreamLocked, match=r"stream 'orders' is being synced by nightly-1@another-host:4242 since"):
            second.acquire_lock("orders", "nightly-2@this-host:1")
    finally:
        first.close()
        second.close()
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS hostile_state CASCADE"))
        engine.dispose()
