"""People (registered customers, guest buyers) -> ``profiles/import_batch`` data items, and a quarantine.

A profile is keyed by what its orders are matched by: the first matching mode (the mode, then its
fallback) whose field the row has, giving the ledger id ``email:<address>`` or ``phone:<number>``
(:func:`profile_keys`, shared with the orders' owner key so both sides agree). The e-mail goes in
lower-cased and trimmed, the phone in international form (``+`` and digits).

Consent is the shop's: a subscription (e-mail or SMS, to the configured resource) is added only where the
row's consent column is true, and it never carries ``status`` or ``priority``, so a later import cannot
undo an unsubscribe made in Altcraft (docs/altcraft-profiles.md). A false consent sends nothing, or, with
``withdrawn_consent: unsubscribe``, the subscription as ``unsubscribed``. Pure, no I/O.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pdr
import pyarrow as pa
import pyarrow.compute as pc
from pandera.typing import Series

from altcraft_sync.catalogue import CONSENT_CHANNELS, PROFILE_DATE_FIELDS, SEX_NUMBERS, SEX_VALUES, key_field
from altcraft_sync.cursor import CF_PREFIX, CONSENT_PREFIX, MATCH_PREFIX
from altcraft_sync.sources import ProfilesStream
from transforms import contract
from transforms import values as V
from transforms.checks import EMAIL, Text, matches
from transforms.order_extras import change_times
from transforms.payload import (
    Mapped,
    contract_frame,
    deleted_mask,
    gc_paused,
    payloads,
    plain_keys,
    record_texts,
    split_problems,
)
from transforms.quarantine import quarantine_rows, with_quarantine
from transforms.spec import MappingSpec

PHONE = r"^\+[0-9]{7,15}$"
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_PHONE_NOISE = (" ", "-", "(", ")", ".", "\u00a0", "\t")
_ADDRESS = re.compile(EMAIL)
_NULL = pa.scalar(None, pa.string())


class ProfileContract(pdr.DataFrameModel):
    """A profile data object (docs/altcraft-profiles.md): an address in the form Altcraft accepts, dates
    as dates, one record per key within a chunk."""

    key: Series[Text] = pdr.Field(nullable=True, alias="_key")
    email: Series[Text] | None = pdr.Field(nullable=True)
    phone: Series[Text] | None = pdr.Field(nullable=True)

    @pdr.check("email", error="email is an address")
    def _email(cls, s: pd.Series) -> pd.Series:
        return matches(EMAIL)(s)

    @pdr.check("phone", error="phone in international form (+ and 7-15 digits)")
    def _phone(cls, s: pd.Series) -> pd.Series:
        return matches(PHONE)(s)

    @pdr.dataframe_check(error="a person has an e-mail or phone for one of the matching modes", ignore_na=False)
    def _has_key(cls, df: pd.DataFrame) -> pd.Series:
        return df["_key"].notna()

    @pdr.dataframe_check(error="one person per matching key (e-mail or phone)", ignore_na=False)
    def _unique_key(cls, df: pd.DataFrame) -> pd.Series:
        return df["_key"].isna() | ~df["_key"].duplicated(keep=False)

    class Config:
        strict = False


def _text(values: V.Column | pd.Series) -> pa.Array:
    """Values as an Arrow string array (an integral float, a phone read from a numeric column, without its
    ``.0``)."""
    if isinstance(values, pd.Series):
        values = V.strings(values)
    if isinstance(values, pa.Array):
        return values if values.type == pa.string() else values.cast(pa.string())
    return pa.array([None if v is None or v != v else str(int(v)) if isinstance(v, float) and v.is_integer()
                     else str(v) for v in values], pa.string())


def _none_if_empty(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(text, ""), _NULL, text)


def normal_emails(values: V.Column | pd.Series) -> pa.Array:
    """E-mails trimmed and lower-cased (empty is none)."""
    return _none_if_empty(pc.utf8_lower(pc.utf8_trim_whitespace(_text(values))))


def normal_phones(values: V.Column | pd.Series) -> pa.Array:
    """Phones as ``+`` and digits: spaces, dashes, dots and brackets dropped; a number written without ``+``
    is taken as already holding its country code. What is still not a phone goes to the contract as it is."""
    text = _text(values)
    for noise in _PHONE_NOISE:  # literal replaces: several times cheaper than one regex replace
        text = pc.replace_substring(text, noise, "")
    text = _none_if_empty(text)
    digits = pc.fill_null(pc.match_substring_regex(text, r"^[0-9]+$"), False)
    return pc.if_else(digits, pc.binary_join_element_wise("+", text, ""), text)


def profile_keys(email: V.Column | None, phone: V.Column | None, modes: list[str], n: int) -> pa.Array:
    """Each row's profile key, ``<field>:<value>`` (values as :func:`normal_emails` / :func:`normal_phones`
    give them): the first mode (in the order tried) whose field the row has; null when no mode finds one.
    An e-mail that is not an address is no key, as the orders' matching has it. In Arrow: the orders' owner
    keys are built with every chunk."""
    given: dict[str, pa.Array] = {}
    if email is not None:
        text = _text(email)
        given["email"] = pc.if_else(pc.fill_null(pc.match_substring_regex(text, EMAIL), False), text, _NULL)
    if phone is not None:
        given["phone"] = _text(phone)
    keys = pa.nulls(n, pa.string())
    for fld in dict.fromkeys(f for mode in modes for f in key_field(mode)):
        if fld in given:
            keys = pc.coalesce(keys, pc.binary_join_element_wise(f"{fld}:", given[fld], ""))
    return keys


def listed_key(profile: dict[str, Any], modes: list[str]) -> str | None:
    """The key of a profile as Altcraft lists it (its ``email`` field, its first phone), made exactly as
    :func:`map_profiles` keys the shop's rows, so verify can look it up in the ledger."""
    phones = profile.get("phones")
    email = normal_emails([profile.get("email")])
    phone = normal_phones([phones[0] if isinstance(phones, list) and phones else None])
    key: str | None = profile_keys(email, phone, modes, 1)[0].as_py()
    return key


def _dates(series: pd.Series) -> list[str | None]:
    """A date field (birthday) as ``YYYY-MM-DD``: a date has no time zone, so none is applied."""

    def one(v: Any) -> str:
        if isinstance(v, datetime | date | pd.Timestamp):
            return v.strftime("%Y-%m-%d")
        return str(v).strip()[:10] if len(str(v).strip()) >= 10 and str(v)[10:11] in ("", " ", "T") else str(v)

    return V._by_unique(series, one)


def _sex(series: pd.Series, spec: ProfilesStream) -> list[Any]:
    def one(v: Any) -> Any:
        text = str(v).strip()
        value = spec.sex_map.get(text, text.lower() if text.lower() in SEX_VALUES else None)
        return SEX_NUMBERS[value] if value is not None and spec.sex_format == "number" else value

    return V._by_unique(series, one)


def _fields(frame: pd.DataFrame, spec: ProfilesStream, m: MappingSpec) -> dict[str, V.Column]:
    out: dict[str, V.Column] = {}
    for name in spec.columns:
        col = frame[name]
        if name == "_sex":
            out[name] = _sex(col, spec)
        elif name == "_regdate":
            out[name] = V.rfc3339(col, m.tz)
        elif name in PROFILE_DATE_FIELDS:
            out[name] = _dates(col)
        else:
            out[name] = V.strings(col)
    for name in spec.profile_fields:
        out[name] = V.strings(frame[CF_PREFIX + name])
    return out


def _subscriptions(frame: pd.DataFrame, spec: ProfilesStream, address: dict[str, list[str | None]]) -> list[Any]:
    """Each row's subscriptions: one per consented channel with an address, no status or priority; with
    ``withdrawn_consent: unsubscribe``, one with ``status: unsubscribed`` per channel whose consent is false
    (NULL is "never asked": nothing)."""
    n = len(frame)
    subs: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    withdraw = spec.withdrawn_consent == "unsubscribe"
    for channel in spec.consent:
        agreed = V.booleans(frame[CONSENT_PREFIX + channel])
        field_name = CONSENT_CHANNELS[channel]
        for i, (ok, addr) in enumerate(zip(agreed, address[field_name])):
            if not addr:
                continue
            if ok is True:
                subs[i].append({"channel": channel, field_name: addr, "resource_id": spec.resource_id})
            elif ok is False and withdraw:
                subs[i].append({"channel": channel, field_name: addr, "resource_id": spec.resource_id,
                                "status": "unsubscribed"})
    return [s or None for s in subs]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@gc_paused
def map_profiles(frame: pd.DataFrame, m: MappingSpec) -> Mapped:
    """One chunk of people -> profile records keyed by their matching key; soft-deleted rows become
    deletions (reported by the engine, never sent)."""
    spec = m.section
    assert isinstance(spec, ProfilesStream), f"{m.stream} is not a profiles stream"
    out = Mapped(m.entity)
    frame = frame.reset_index(drop=True)
    n = len(frame)
    email = normal_emails(frame[MATCH_PREFIX + "email"]) if "email" in spec.matching.columns else None
    phone = normal_phones(frame[MATCH_PREFIX + "phone"]) if "phone" in spec.matching.columns else None
    nothing = [None] * n
    for name, values in (("external_id", profile_keys(email, phone, spec.matching.modes, n).to_pylist()),
                         ("_email", email.to_pylist() if email is not None else nothing),
                         ("_phone", phone.to_pylist() if phone is not None else nothing)):
        frame[name] = pd.Series(values, index=frame.index, dtype=object)
    gone = deleted_mask(frame)
    if gone.any():
        out.deletions = [(k, pk) for k, pk in zip(frame["external_id"][gone], plain_keys(frame["_pk"][gone]))
                         if k is not None]
        frame = frame[~gone].reset_index(drop=True)
    frame, problems = split_problems(frame, m.entity)
    out.quarantine = problems
    if frame.empty:
        return out
    keys: list[str | None] = [_str(v) for v in frame["external_id"].tolist()]
    emails = [_str(v) for v in frame["_email"].tolist()] if email is not None else None
    phones = [_str(v) for v in frame["_phone"].tolist()] if phone is not None else None
    pks = plain_keys(frame["_pk"])
    F = _fields(frame, spec, m)
    if emails is not None:  # a malformed e-mail is left out (the profile goes by phone), or shown if it is all
        emails = [e if k is None or (e is not None and _ADDRESS.match(e)) else None for e, k in zip(emails, keys)]
    checked = contract_frame({"_key": keys, **({"email": emails} if emails is not None else {}),
                              **({"phone": phones} if phones is not None else {})})
    fails = contract.failures(checked, ProfileContract.to_schema())
    ids = [k if k is not None else f"row:{pk}" for k, pk in zip(keys, pks)]
    out.quarantine = with_quarantine(problems, quarantine_rows(m.entity, fails, ids, pks))
    bad = np.zeros(len(frame), dtype=bool)
    bad[fails["pos"].to_numpy(dtype=np.int64)] = True
    good = np.flatnonzero(~bad)
    columns: dict[str, V.Column] = dict(F)
    if emails is not None:
        columns["email"] = emails
    if phones is not None:
        columns["phones"] = [[p] if p else None for p in phones]
    columns["subscriptions"] = _subscriptions(frame, spec, {"email": emails or [None] * len(frame),
                                                            "phone": phones or [None] * len(frame)})
    out.payloads = payloads(record_texts(columns, frozenset(), good), good, ids, pks)
    if m.change_times:  # for the trigger window: a person's last change, as the orders' (its updated_at)
        out.changed_at = change_times(frame, {"create_time": F["_regdate"]} if "_regdate" in F else {}, good, m.tz)
    return out
