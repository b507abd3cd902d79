"""The preset tests' shop URL: each preset runs on MariaDB, and on SQLite where its SQL allows."""

from __future__ import annotations

import pytest

from tests.helpers import shop_url_for


@pytest.fixture(params=["sqlite", "mysql"])
def shop_url(request, tmp_path):
    return shop_url_for(request.param, tmp_path)
