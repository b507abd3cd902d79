"""The profile client against the emulator over real HTTP: per-item results read by position, the
one-at-a-time fallback when the counts differ, one request per matching mode, and the explicit delete."""

from __future__ import annotations

from connectors.altcraft import Encoded
from connectors.altcraft_profiles import ProfileClient

MODES = {"email": "email_profile", "phone": "phone"}


def profile(key: str, **data) -> Encoded:
    fld, _, value = key.partition(":")
    body = {"email": value} if fld == "email" else {"phones": [value]}
    return Encoded.of({"k": key, **body, **data}, key="k")


def strip_key(records):
    """Encoded.of keeps the key in the bytes; a real record does not carry it."""
    import orjson

    return [Encoded(r.external_id, orjson.dumps({k: v for k, v in orjson.loads(r.data).items() if k != "k"}))
            for r in records]


def test_results_are_read_by_position(emulator, make_client):
    pc = ProfileClient(make_client())
    records = strip_key([profile("email:a@example.com", _fname="A"), profile("email:b@example.com", _bdate="soon"),
                         profile("email:c@example.com", _fname="C")])
    report = pc.import_profiles(records, root={"db_id": 1}, mode_of=MODES.get)
    out = report.outcomes
    assert [out[k].status for k in ("email:a@example.com", "email:b@example.com", "email:c@example.com")] == \
        ["delivered", "rejected", "delivered"]
    assert "incorrect date" in out["email:b@example.com"].text
    stored = {p["email"]: pid for pid, p in emulator.store.profiles.items()}
    # the profile ids came back where their profiles were: a, then c (b refused in between)
    assert out["email:a@example.com"].altcraft_id == stored["a@example.com"]
    assert out["email:c@example.com"].altcraft_id == stored["c@example.com"]
    assert report.requests == 1 and emulator.stats["method:profiles/import_batch"] == 1


def test_counts_that_differ_send_each_profile_alone(emulator, make_client):
    emulator.faults.short_profile_results = True  # one result fewer than the items: positions mean nothing
    pc = ProfileClient(make_client())
    records = strip_key([profile(f"email:p{i}@example.com", _fname=f"P{i}") for i in range(3)])
    report = pc.import_profiles(records, root={"db_id": 1}, mode_of=MODES.get)
    stored = {p["email"]: pid for pid, p in emulator.store.profiles.items()}
    assert {k: o.altcraft_id for k, o in report.outcomes.items()} == \
        {f"email:p{i}@example.com": stored[f"p{i}@example.com"] for i in range(3)}
    assert emulator.stats["method:profiles/import"] == 3 and report.requests == 4
    assert len(emulator.store.profiles) == 3  # the batch and the re-sends upserted the same three


def test_one_request_per_matching_mode(emulator, make_client):
    seen = []
    original = emulator.handle

    def spy(method, body, bearer):
        seen.append((method, body.get("matching"), len(body.get("data") or [])))
        return original(method, body, bearer)

    emulator.handle = spy
    pc = ProfileClient(make_client())
    records = strip_key([profile("email:a@example.com"), profile("phone:+79001234567"), profile("email:b@example.com")])
    report = pc.import_profiles(records, root={"db_id": 1}, mode_of=MODES.get)
    assert report.count("delivered") == 3
    assert sorted(seen) == [("profiles/import_batch", "email_profile", 2), ("profiles/import_batch", "phone", 1)]


def test_an_unsubscribe_in_altcraft_survives_a_re_import(emulator, make_client):
    pc = ProfileClient(make_client())
    sub = [{"channel": "email", "email": "a@example.com", "resource_id": 5}]
    records = strip_key([profile("email:a@example.com", subscriptions=sub)])
    pc.import_profiles(records, root={"db_id": 1}, mode_of=MODES.get)
    (stored,) = emulator.store.profiles.values()
    assert stored["subscriptions"][0]["status"] == "subscribed"
    stored["subscriptions"][0]["status"] = "unsubscribed"  # the person unsubscribed in Altcraft
    pc.import_profiles(strip_key([profile("email:a@example.com", _fname="Ann", subscriptions=sub)]),
                       root={"db_id": 1}, mode_of=MODES.get)
    assert stored["_fname"] == "Ann" and stored["subscriptions"][0]["status"] == "unsubscribed"


def test_read_back_and_explicit_delete(emulator, make_client):
    pc = ProfileClient(make_client())
    report = pc.import_profiles(strip_key([profile("email:a@example.com"), profile("phone:+79001234567")]),
                                root={"db_id": 2}, mode_of=MODES.get)
    pid = report.outcomes["email:a@example.com"].altcraft_id
    assert pid is not None
    assert [p["id"] for p in pc.list_profiles(2, limit=1)] == list(emulator.store.profiles)
    assert pc.get_profile(2, pid)["email"] == "a@example.com"
    assert pc.delete_profile(2, pid).status == "delivered"
    assert pc.get_profile(2, pid) is None and len(emulator.store.profiles) == 1
    assert pc.delete_profile(2, pid).code == 404  # already absent counts as done
