"""A run hands Arrow's freed buffers back (``runner.runtime.return_freed_buffers``): pyarrow's default
mimalloc pool keeps them mapped, ~20 MB at a full sync's peak. A user's own ``ARROW_DEFAULT_MEMORY_POOL``
wins. Checked in a fresh interpreter: the pool is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = ("import pyarrow as pa; before = pa.default_memory_pool().backend_name; "
         "from runner.runtime import return_freed_buffers; return_freed_buffers(); "
         "print(before, pa.default_memory_pool().backend_name)")


def _pools(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env}, capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.split()


def test_a_run_uses_the_system_allocator_for_arrow_buffers() -> None:
    before, after = _pools()
    if before == "system":
        pytest.skip("this pyarrow build has no other pool")
    assert after == "system"


def test_the_users_own_arrow_pool_setting_is_kept() -> None:
    import pyarrow as pa

    if "mimalloc" not in pa.supported_memory_backends():
        pytest.skip("this pyarrow build has no mimalloc pool")
    assert _pools(ARROW_DEFAULT_MEMORY_POOL="mimalloc") == ["mimalloc", "mimalloc"]
