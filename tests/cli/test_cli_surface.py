"""Issue 27: a CLI that fits the ecosystem and messages that name the fix. ``--version``, ``--log-level`` /
``-v``, a described ``--json`` on every reporting command, flags without placeholders, every config mistake
in one line, a busy port in one line, ``init`` that never writes through a link, progress bars on a
terminal only."""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from connectors.altcraft_wire import wrong_url
from tests.conftest import TOKEN
from tests.helpers import build_shop, shop_config

ROOT = Path(__file__).parents[2]
REPORTING = ["sync", "backfill", "retry", "check", "status", "verify", "quarantine"]


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # no profile with an API: runs are local
    return env


def _cli(args: list[str], tmp_path: Path, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=_cli_env(tmp_path),
                          capture_output=True, text=True, timeout=300, **kw)


# --- the command line itself --------------------------------------------------------------------------
def test_version_prints_the_installed_version():
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"altcraft-sync {version('altcraft-sync')}"


@pytest.mark.parametrize("command", REPORTING)
def test_every_reporting_command_has_a_described_json_option(command):
    out = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    line = next(x for x in out.splitlines() if "--json" in x)
    assert "Print the result as JSON" in line
    assert "<bool>" not in out  # a flag shows its meaning, not a placeholder


def test_log_level_and_verbose_set_the_log_level(tmp_path):
    runner = CliRunner()
    missing = str(tmp_path / "none.yaml")
    runner.invoke(app, ["-v", "check", "--config", missing])
    assert logging.getLogger("altcraft_sync").level == logging.DEBUG
    runner.invoke(app, ["--log-level", "warning", "check", "--config", missing])
    assert logging.getLogger("altcraft_sync").level == logging.WARNING
    bad = runner.invoke(app, ["--log-level", "loud", "check", "--config", missing])
    assert bad.exit_code == 2 and "--log-level loud: one of debug, info, warning, error" in bad.output


def test_check_and_status_answer_in_json(tmp_path, emulator):
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=30)
    cfg = shop_config(tmp_path, url, emulator, TOKEN)
    check = CliRunner().invoke(app, ["check", "--config", str(cfg), "--json"])
    doc = json.loads(check.stdout)
    assert check.exit_code == 0 and doc["ok"] is True and all(c["ok"] for c in doc["checks"])
    status = CliRunner().invoke(app, ["status", "--config", str(cfg), "--json"])
    assert status.exit_code == 0 and {"streams", "backlog", "runs"} <= set(json.loads(status.stdout))


def test_sync_json_is_the_only_thing_on_stdout(tmp_path, emulator):
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=40)
    cfg = shop_config(tmp_path, url, emulator, TOKEN)
    result = _cli(["sync", "--config", str(cfg), "--json"], tmp_path)
    doc = json.loads(result.stdout)
    assert doc["command"] == "nightly-sync" and doc["exit_code"] == result.returncode
    assert doc["outcome"] in ("ok", "warnings") and doc["streams"]["orders"]["delivered"] > 0


# --- config mistakes: each one line that names the fix -------------------------------------------------
def _config_error(tmp_path: Path, mutate) -> str:
    url = f"sqlite:///{tmp_path}/shop.db"
    raw = yaml.safe_load((ROOT / "sandbox" / "demo-shop.yaml").read_text())
    raw["source"]["url"] = url
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    problem = [x for x in lines if "config" in x]
    assert len(problem) == 1, result.output  # one line, whatever the terminal's width
    return problem[0]


def test_a_typo_key_lists_every_problem(tmp_path):
    line = _config_error(tmp_path, lambda raw: raw.__setitem__("stream", raw.pop("streams")))
    assert "2 problems" in line and "streams: Field required" in line
    assert "stream: not a known setting (did you mean 'streams'?)" in line and "more)" not in line


@pytest.mark.parametrize(("url", "fix"), [
    ("postgres://u:secret@127.0.0.1/shop", "write postgresql://"),
    ("mysql://u:secret@127.0.0.1/shop", "write mysql+pymysql://"),
    ("mariadb://u:secret@127.0.0.1/shop", "write mariadb+pymysql://"),
])
def test_a_wrong_url_scheme_names_the_right_one(tmp_path, url, fix):
    line = _config_error(tmp_path, lambda raw: raw["source"].__setitem__("url", url))
    assert f"source.url: {url.split(':')[0]}:// is not a scheme" in line and fix in line and "secret" not in line


def test_an_api_url_ending_in_api_gets_the_right_hint():
    assert wrong_url("http://a.example/api/", "market/orders/import", "404").endswith(
        "e.g. http://a.example/api/v1.1/")
    assert wrong_url("http://a.example/", "market/orders/import", "404").endswith("e.g. http://a.example/api/v1.1/")


def test_a_busy_port_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _cli(["sandbox", "--port", str(port)], tmp_path)
        demo = _cli(["demo", "--port", str(port)], tmp_path)
    assert demo.returncode == 2 and demo.stderr.strip().count("\n") == 0, demo.stderr
    assert f"demo: cannot listen on 127.0.0.1:{port}: Address already in use" in demo.stderr
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"sandbox: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "pass --port" in result.stderr


def test_init_replaces_a_link_and_leaves_its_target_alone(tmp_path, monkeypatch):
    target = tmp_path / "tracked.yaml"
    target.write_text("# tracked\n")
    link = tmp_path / "altcraft-sync.yaml"
    link.symlink_to(target.name)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    refused = runner.invoke(app, ["init", "--preset", "woocommerce"])
    assert refused.exit_code == 2 and "exists; pass --force" in refused.output
    done = runner.invoke(app, ["init", "--preset", "woocommerce", "--force"])
    assert done.exit_code == 0 and "replacing the link to tracked.yaml" in done.output
    assert target.read_text() == "# tracked\n"
    assert not link.is_symlink() and "wp_" in link.read_text()


def test_demo_hint_is_a_command_that_runs(tmp_path):
    from cli.app import command

    hint = command("status")
    program = hint.split()[0]
    assert subprocess.run([program, "--version"], cwd=Path.cwd(), capture_output=True).returncode == 0


# --- progress: on a terminal, not when piped ---------------------------------------------------------
def _slow_config(tmp_path: Path, emulator) -> Path:
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=150)
    emulator.faults.latency_ms = 50  # every stream takes several refreshes of the bars, with a rate to show
    return shop_config(tmp_path, url, emulator, TOKEN, chunk_size=40)


def _on_a_pty(args: list[str], tmp_path: Path) -> tuple[int, str]:
    env = {**_cli_env(tmp_path), "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env, stdin=child,
                            stdout=child, stderr=child, close_fds=True)
    os.close(child)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(main)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_progress_is_drawn_on_a_terminal_and_not_when_piped(tmp_path, emulator):
    cfg = _slow_config(tmp_path, emulator)
    code, screen = _on_a_pty(["sync", "--config", str(cfg)], tmp_path)
    assert code == 1, screen  # the demo shop's planted invalid rows: a warning
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)  # the terminal's control sequences left out
    assert "orders" in text and " chunks · " in text and "rec/s" in text, text[-3000:]
    assert "ETA" in text, text[-3000:]  # a bar on a terminal asks for the rows ahead (piped runs do not count them)

    code, screen = _on_a_pty(["verify", "--config", str(cfg), "--stream", "orders"], tmp_path)
    assert code == 0 and "orders" in screen and " listed · " in screen, screen

    piped = _cli(["sync", "--config", str(cfg)], tmp_path)  # nothing new: still a run of every stream
    assert piped.returncode in (0, 1)
    assert " chunks · " not in piped.stdout + piped.stderr and "rec/s" not in piped.stdout + piped.stderr


def test_demo_db_refuses_a_filled_database_unless_asked_to_replace_it(tmp_path):
    url = f"sqlite:///{tmp_path}/shop.db"
    assert CliRunner().invoke(app, ["demo-db", "--url", url, "--orders", "30"]).exit_code == 0
    again = CliRunner().invoke(app, ["demo-db", "--url", url, "--orders", "30"])
    assert again.exit_code == 2 and "already has an orders table; pass --replace" in again.output, again.output
    replaced = CliRunner().invoke(app, ["demo-db", "--url", url, "--orders", "40", "--replace"])
    assert replaced.exit_code == 0 and "orders=40" in replaced.output, replaced.output
