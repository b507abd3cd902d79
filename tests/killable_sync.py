"""Run the orders stream in a child process, so a test can kill it with SIGKILL mid-stream."""

from __future__ import annotations

import sys

from tests.helpers import run_all

if __name__ == "__main__":
    run_all(sys.argv[1], streams=["orders"], run_id="doomed-run")
