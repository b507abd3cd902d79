"""The profile mapper and its settings: keys by matching mode and fallback, consent-only subscriptions that
never carry a status, the field formats Altcraft documents, and the rows it refuses."""

from __future__ import annotations

import orjson
import pandas as pd
import pytest

from altcraft_sync.config import parse_config
from altcraft_sync.errors import ConfigError
from transforms.chunk import map_chunk
from transforms.profiles import profile_keys
from transforms.spec import mapping_spec

SECTION = {
    "table": "customers", "primary_key": "id", "db_id": 3, "resource_id": 7, "deleted_flag": "gone",
    "matching": {"mode": "email", "fallback": ["phone"], "columns": {"email": "email", "phone": "phone"}},
    "columns": {"_fname": "fn", "_bdate": "bd", "_sex": "sx", "_regdate": "rd"},
    "consent": {"email": "newsletter", "sms": "sms_ok"}, "profile_fields": {"tier": "tier"},
    "sex_map": {"m": "male", "f": "female"},
}


def frame(**cols) -> pd.DataFrame:
    n = len(cols["m.email"])
    base = {"_pk": list(range(1, n + 1)), "_ts": [None] * n, "_deleted": [0] * n, "_fname": [f"N{i}" for i in range(n)],
            "_bdate": [None] * n, "_sex": [None] * n, "_regdate": [None] * n, "m.phone": [None] * n,
            "consent.email": [0] * n, "consent.sms": [0] * n, "cf.tier": [None] * n}
    return pd.DataFrame({**base, **cols})


def mapped(section=SECTION, **cols):
    m = mapping_spec(parse_config({"streams": {"customers": section}}), "customers")
    out = map_chunk(frame(**cols), None, m)
    return out, {p.external_id: orjson.loads(p.data) for p in out.payloads}


def test_keys_follow_the_matching_modes_and_normalise_addresses():
    out, recs = mapped(**{"m.email": [" Ann@Example.COM ", None, None],
                          "m.phone": ["+7 900 111-22-33", "8 (900) 222 33 44", None]})
    assert list(recs) == ["email:ann@example.com", "phone:+89002223344"]
    assert recs["email:ann@example.com"]["email"] == "ann@example.com"
    assert recs["email:ann@example.com"]["phones"] == ["+79001112233"]
    assert "email" not in recs["phone:+89002223344"]
    (row,) = out.quarantine.itertuples()
    assert row.source_pk == "3" and "e-mail or phone" in row.check  # keys are canonical text
    # the orders' owner key is the same function: an order of Ann's finds her profile
    assert profile_keys(["ann@example.com"], [None], ["email", "phone"], 1).to_pylist() == ["email:ann@example.com"]
    assert profile_keys(["not-an-address"], ["+79001112233"], ["email", "phone"], 1).to_pylist() == ["phone:+79001112233"]


def test_only_consent_makes_a_subscription_and_none_carries_a_status():
    _, recs = mapped(**{"m.email": ["a@x.io", "b@x.io", "c@x.io"], "m.phone": ["+79000000001", None, "+79000000003"],
                        "consent.email": [1, 0, "yes"], "consent.sms": [1, 1, 0]})
    assert recs["email:a@x.io"]["subscriptions"] == [
        {"channel": "email", "email": "a@x.io", "resource_id": 7},
        {"channel": "sms", "phone": "+79000000001", "resource_id": 7}]
    assert "subscriptions" not in recs["email:b@x.io"]  # SMS consent but no phone to subscribe
    assert recs["email:c@x.io"]["subscriptions"] == [{"channel": "email", "email": "c@x.io", "resource_id": 7}]
    no_consent = {k: v for k, v in SECTION.items() if k not in ("consent", "resource_id")}
    _, recs = mapped(no_consent, **{"m.email": ["a@x.io"], "consent.email": [1]})
    assert "subscriptions" not in recs["email:a@x.io"]



def test_a_withdrawn_consent_unsubscribes_only_when_asked_and_never_asked_sends_nothing():
    """``withdrawn_consent: unsubscribe``: a false consent sends its subscription as ``unsubscribed``; NULL
    ("never asked") and a value that is no boolean send nothing; a true one is subscribed without a status.
    The default (``keep``) never sends a status."""
    cols = {"m.email": ["a@x.io", "b@x.io", "c@x.io", "d@x.io"], "m.phone": ["+79000000001", None, None, None],
            "consent.email": [0, None, "maybe", 1], "consent.sms": [False, 0, None, None]}
    _, recs = mapped({**SECTION, "withdrawn_consent": "unsubscribe"}, **cols)
    assert recs["email:a@x.io"]["subscriptions"] == [
        {"channel": "email", "email": "a@x.io", "resource_id": 7, "status": "unsubscribed"},
        {"channel": "sms", "phone": "+79000000001", "resource_id": 7, "status": "unsubscribed"}]
    assert "subscriptions" not in recs["email:b@x.io"]  # never asked by e-mail; no phone for the SMS one
    assert "subscriptions" not in recs["email:c@x.io"]
    assert recs["email:d@x.io"]["subscriptions"] == [{"channel": "email", "email": "d@x.io", "resource_id": 7}]
    _, kept = mapped(**cols)
    assert [r.get("subscriptions") for r in kept.values()] == [None, None, None, recs["email:d@x.io"]["subscriptions"]]


def test_fields_in_the_forms_altcraft_documents():
    _, recs = mapped(**{"m.email": ["a@x.io", "b@x.io"], "_bdate": ["1990-05-01 00:00:00", "1985-12-31"],
                        "_sex": ["m", "other"], "_regdate": ["2024-01-02 03:04:05", None], "cf.tier": ["gold", None]})
    a, b = recs["email:a@x.io"], recs["email:b@x.io"]
    out, _ = mapped(**{"m.email": ["a@x.io"], "_regdate": ["2024-01-02 03:04:05"]})
    assert out.changed_at.tolist() == [1704164645.0]  # a person's change time, for the trigger window
    assert (a["_bdate"], a["_sex"], a["_regdate"], a["tier"]) == ("1990-05-01", "male", "2024-01-02T03:04:05.000Z", "gold")
    assert b["_bdate"] == "1985-12-31" and "_sex" not in b and "tier" not in b
    _, recs = mapped({**SECTION, "sex_format": "number"}, **{"m.email": ["a@x.io"], "_sex": ["f"]})
    assert recs["email:a@x.io"]["_sex"] == 2


def test_refused_rows_and_soft_deletes():
    out, recs = mapped(**{"m.email": ["bad-address", "d@x.io", "d@x.io", "e@x.io", "bad@"],
                          "m.phone": [None, None, None, None, "+79000000005"], "_deleted": [0, 0, 0, 1, 0]})
    assert recs == {"phone:+79000000005": {"_fname": "N4", "phones": ["+79000000005"]}}  # the bad e-mail left out
    reasons = {(r.external_id, r.check, r.value) for r in out.quarantine.itertuples()}
    assert ("row:1", "email is an address", "bad-address") in reasons
    assert {r.source_pk for r in out.quarantine.itertuples() if "one person" in r.check} == {"2", "3"}  # keys are canonical text
    assert out.deletions == [("email:e@x.io", 4)]  # reported by the engine, never sent as a delete


@pytest.mark.parametrize(("change", "message"), [
    ({"resource_id": None}, "resource_id: consent is mapped"),
    ({"matching": {"mode": "custom", "columns": {"field_name": "a", "field_value": "b"}}}, "e-mail or phone modes only"),
    ({"consent": {"push": "x"}}, "consent.push: not a channel"),
    ({"consent": {}, "resource_id": None, "withdrawn_consent": "unsubscribe"}, "withdrawn_consent: unsubscribe needs"),
    ({"profile_fields": {"_fname": "x"}}, "profile_fields._fname"),
    ({"columns": {"_birthday": "bd"}}, "columns._birthday: not an Altcraft field"),
])
def test_settings_refused_with_one_line(change, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config({"streams": {"customers": {**SECTION, **change}}})


def test_profiles_use_the_orders_modes():
    orders = {"table": "o", "primary_key": "id", "columns": {"external_id": "id", "status": "s", "total_price": "t",
              "currency": "c", "endpoint": "e"}, "matching": {"mode": "email", "columns": {"email": "em"}},
              "lines": {"table": "l", "primary_key": "id", "parent_key": "o", "default_status": "new",
                        "columns": {"external_id": "id", "product": "p", "final_price_per_item": "f", "count": "n"}}}
    with pytest.raises(ConfigError, match=r"streams\.customers\.matching: modes \['email', 'phone'\] differ"):
        parse_config({"streams": {"customers": SECTION, "orders": orders}})
    orders["matching"] = {"mode": "email", "fallback": ["phone"], "columns": {"email": "em", "phone": "ph"}}
    parse_config({"streams": {"customers": SECTION, "orders": orders}})


def test_a_profile_compares_without_altcraft_owned_fields():
    from transforms.compare import profile_differences

    sent = {"email": "a@x.io", "_fname": "Ann", "_regdate": "2024-01-02T03:04:05.000Z",
            "subscriptions": [{"channel": "email", "email": "a@x.io", "resource_id": 7}]}
    held = {"id": "p1", "db_id": 3, "email": "A@x.io", "_fname": "Ann", "_regdate": "2024-01-02T03:04:05+00:00",
            "subscriptions": [{"channel": "email", "email": "a@x.io", "resource_id": 7, "status": "unsubscribed",
                               "priority": 3}]}
    assert profile_differences(sent, held) == []
    assert profile_differences({**sent, "_fname": "Anna"}, held) == ["_fname"]
    assert profile_differences(sent, {**held, "subscriptions": []}) == ["subscriptions[email]"]
