"""The command line's exit (``cli.process_exit.leave``) skips only the interpreter's teardown: threads
that are not daemons finish, threading's and ``atexit``'s hooks run (Prefect's log shipping, logging's
flush, a temporary server's stop), buffered output is written, and the status is the command's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import atexit, logging, sys, threading, time
from cli.process_exit import leave

log = logging.getLogger("probe")
log.addHandler(logging.FileHandler(sys.argv[1]))
log.warning("logged before the exit")
atexit.register(lambda: print("atexit hook ran", flush=True))
threading._register_atexit(lambda: print("thread exit hook ran", flush=True))
worker = threading.Thread(target=lambda: (time.sleep(0.3), print("worker finished", flush=True)))
worker.start()
sys.stdout.write("buffered, not flushed")
leave(eval(sys.argv[2]))
"""


def _leave(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    log = tmp_path / "probe.log"
    return subprocess.run([sys.executable, "-c", SCRIPT, str(log), code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_leave_keeps_everything_a_normal_exit_does_and_the_status(tmp_path) -> None:
    done = _leave(tmp_path, "3")
    assert done.returncode == 3
    out = done.stdout
    assert out.startswith("buffered, not flushed")
    # Python's own order: threading's hooks, then the threads joined, then atexit's hooks
    assert out.index("thread exit hook ran") < out.index("worker finished") < out.index("atexit hook ran")
    assert (tmp_path / "probe.log").read_text() == "logged before the exit\n"


def test_leave_gives_the_status_sys_exit_would(tmp_path) -> None:
    assert _leave(tmp_path, "None").returncode == 0
    said = _leave(tmp_path, "'config file x.yaml not found'")
    assert said.returncode == 1 and said.stderr.strip() == "config file x.yaml not found"


def test_the_console_script_exits_through_it() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['altcraft-sync', 'sync', '--config', "
                           "'/nonexistent/altcraft.yaml']; from cli.main import main; main()"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "/nonexistent/altcraft.yaml not found" in done.stderr
