"""The token never leaves: whatever Altcraft (or something in its place) echoes back, the token is absent
from the terminal (stdout, stderr), the state database's bytes and, under Prefect, Prefect's database."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import orjson
import pytest

from altcraft_sync.masking import MASKER, mask, register
from tests.hostile.conftest import SECRET, Hostile, leaks
from tests.hostile.proxy import Reply, Upstream, fixed

ECHO = f"token {SECRET} (url {quote(SECRET, safe='')}) is not valid"


def echo_body(status: int, code: int) -> Callable[[bytes, Upstream], Reply]:
    """Altcraft's envelope whose error text repeats the token and the whole request (JSON-escaped)."""
    def answer(body: bytes, _up: Upstream) -> Reply:
        text = f"{ECHO}; request was {body.decode()}"
        return status, {"Content-Type": "application/json"}, orjson.dumps({"error": code, "error_text": text})
    return answer


def per_record_echo(body: bytes, upstream: Upstream) -> Reply:
    """The emulator's own answer, its first record rejected with a text that repeats the token."""
    status, headers, answer = upstream()
    decoded = orjson.loads(answer)
    if decoded.get("result"):
        decoded["result"][0] = {**decoded["result"][0], "error": 400, "error_text": ECHO}
    return status, headers, orjson.dumps(decoded)


CASES = {  # method answered, the answer, how many times, what the output shows, what the state holds
    "401 with the token in its text": ("*", echo_body(200, 401), -1, "error 401: token *** (url ***)", b""),
    "HTTP 401 page echoing it": ("*", fixed(401, ECHO, **{"Content-Type": "text/plain"}), -1, "HTTP 401", b""),
    "HTTP 500 echoing it": ("market/products/import", echo_body(500, 500), -1, "HTTP 500", b""),
    "error 503 echoing it": ("market/products/import", echo_body(200, 503), -1, "error 503: token ***", b""),
    "400 echoing the request": ("market/products/import", echo_body(200, 400), -1, "rejected",
                                b'token *** (url ***) is not valid; request was {"token":"***"'),
    "a per-record error echoing it": ("market/orders/import", per_record_echo, 3, "rejected",
                                      b"token *** (url ***) is not valid"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_token_echoed_by_the_server_is_masked_everywhere(hostile: Hostile, case: str):
    method, answer, times, shown, stored = CASES[case]
    hostile.proxy.inject(method, answer, times)
    run = hostile.sync()
    out = (run.stdout + run.stderr).encode()
    assert not leaks(out), f"{case}: the token reached the terminal:\n{run.stdout}\n{run.stderr}"
    state = hostile.state_bytes()
    assert not leaks(state), f"{case}: the token reached the state database"
    assert shown in run.stdout + run.stderr, run.stdout + run.stderr  # the echo really came back
    assert stored in state  # ... and what Altcraft said is kept, masked


def test_masker_hides_every_form_of_a_secret_and_urls_passwords():
    MASKER.clear()
    register(SECRET, urls=["postgresql://u:pa%40ss@db/x?sslmode=require&password=qp-secret-1"])
    text = (f"{SECRET} {quote(SECRET, safe='')} {orjson.dumps(SECRET).decode()} pa@ss pa%40ss qp-secret-1 "
            "mysql://root:other-pw@h/db?x=1&token=abcdef {\"token\": \"zzz-unknown\"} Bearer abc.def")
    masked = mask(text)
    for gone in (SECRET, quote(SECRET, safe=""), "pa@ss", "pa%40ss", "qp-secret-1", "other-pw", "abcdef",
                 "zzz-unknown", "abc.def"):
        assert gone not in masked, gone
    assert "mysql://root:***@h/db" in masked
    MASKER.clear()


def test_a_database_password_in_a_query_parameter_is_not_printed(tmp_path):
    from altcraft_sync.config import mask_url

    url = "postgresql://altcraft@127.0.0.1:1/nope?password=qp-secret-2"
    assert "qp-secret-2" not in mask_url(url)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"source: {{url: '{url}'}}\nstate: {{url: '{url}'}}\nstreams: {{}}\n")
    import subprocess
    import sys

    from tests.hostile.conftest import ROOT

    run = subprocess.run([sys.executable, "-m", "cli.main", "check", "--config", str(cfg)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "qp-secret-2" not in run.stdout + run.stderr, run.stderr
