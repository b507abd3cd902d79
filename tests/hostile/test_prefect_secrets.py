"""Under Prefect, the token an answer echoes reaches none of Prefect's logs, state messages, artifacts or
events: the bytes of Prefect's database hold it in no form."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.hostile.conftest import Hostile, leaks
from tests.hostile.test_secrets import echo_body, per_record_echo

pytestmark = pytest.mark.prefect


def prefect_database() -> list[Path]:
    from prefect.settings import get_current_settings

    url = str(get_current_settings().server.database.connection_url.get_secret_value())
    path = Path(url.split(":///", 1)[1])
    return [p for p in sorted(path.parent.glob(path.name + "*")) if p.is_file()]


def test_token_echoed_under_prefect_stays_out_of_prefects_database(hostile: Hostile, prefect_harness):
    from flows.sync import nightly_sync

    hostile.proxy.inject("market/products/import", echo_body(200, 503), times=-1)
    failed = nightly_sync(config_path=str(hostile.config), return_state=True)
    assert failed.is_failed() and "error 503: token ***" in (failed.message or ""), failed.message

    hostile.proxy.rules.clear()
    hostile.proxy.inject("market/orders/import", per_record_echo, times=3)
    done = nightly_sync(config_path=str(hostile.config), return_state=True)
    assert done.is_completed(), done.message

    time.sleep(3)  # logs and events are written by the server's services, a moment later
    files = prefect_database()
    data = b"".join(p.read_bytes() for p in files)
    assert files and b"token ***" in data  # the echoes did reach Prefect, masked
    assert not leaks(data), "the token reached Prefect's database"
    assert not leaks(hostile.state_bytes())
