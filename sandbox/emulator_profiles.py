"""The emulated profile API: ``profiles/import_batch``, ``profiles/import``, ``profiles/get``, ``profiles/list``
and ``profiles/delete`` (docs/altcraft-profiles.md sums up what Altcraft documents and what is inferred).

Each choice Altcraft leaves open is marked ``INFERRED`` here and listed in the README ("Emulator: inferred
behaviour"):

- INFERRED: ``import_batch`` answers ``result[]`` with one ``{error, error_text, profile_id}`` per item, in
  the items' order and with no echo of the item's key (the shape ``add_batch`` documents). The fault
  ``short_profile_results`` drops the last result, for clients that must notice.
- INFERRED: in ``import_batch`` the mode is the request's ``matching`` and each item carries its own key:
  ``email`` for e-mail modes, ``phone`` (or the first of ``phones``) for phone modes, ``profile_id``, or the
  custom field named by the root ``field_name``.
- INFERRED: e-mail keys match case-insensitively; phones match as written (international form).
- INFERRED: a key that matches several profiles is an item error 409 ("More than one profiles matches"),
  the code Quick import documents.
- INFERRED: profile import merges: fields left out keep their values. A subscription is one
  (resource_id, channel, address); one that exists keeps its ``status`` and ``priority`` unless the item
  gives them with a value other than -1 (the batch page's rule); a new one without ``status`` is
  ``subscribed``, without ``priority`` 0.
- INFERRED: item errors: 400 for a malformed field (an e-mail that is not an address, a phone not in
  international form, a date that is not one, an unknown system field, a bad subscription), 404 for
  ``profile_id`` matching with no such profile (that mode is "only on update").
- INFERRED: ``_sex`` takes ``"male"``/``"female"`` or the integers 0, 1, 2 (the docs show both).
- INFERRED: ``profiles/get`` and ``profiles/delete`` answer a miss with body error 404.
- INFERRED: ``profiles/list`` pages with ``from_id`` / ``next_from_id`` like the Market lists.
- INFERRED, off unless asked (``require_profiles``): ``market/orders/import`` refuses an order whose
  ``matching`` finds no profile, with item error 404 "profile not found"; Altcraft's guide says the buyers
  of a channel must be imported into its database first, but not what an unknown buyer gets.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from sandbox.emulator_checks import ItemError, RequestError, nonempty
from sandbox.emulator_store import Account, Store

SYSTEM_FIELDS = frozenset({
    "_fname", "_lname", "_bdate", "_sex", "_regdate", "_regip", "_regcity", "_regcountry", "_regurl", "_ip",
    "_city", "_country", "_region", "_postal_code", "_tz", "_vendor", "_status",
})
READ_ONLY = frozenset({"id", "db_id", "_createtime", "_md5", "_xxh", "_xxm", "_emaildomain", "_domaingroup"})
CHANNELS = frozenset({"email", "sms", "push", "notify", "viber", "whatsapp", "telegram_bot"})
STATUSES = frozenset({"subscribed", "unsubscribed", "suspended"})
EMAIL_MODES = frozenset({"email", "email_profile", "email_sub"})
PHONE_MODES = frozenset({"phone", "phone_sub"})
MODES = EMAIL_MODES | PHONE_MODES | {"profile_id", "custom", "email_phone", "email_phone_sub"}
_PHONE = re.compile(r"\+[0-9]{7,15}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?)?")


def _low(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def find(store: Store, db_id: Any, mode: str, key: dict[str, Any]) -> list[str]:
    """Profile ids of database ``db_id`` that ``mode`` finds for ``key`` (``email``, ``phone``,
    ``profile_id``, ``field_name`` + ``field_value``). ``db_id`` None searches every database (orders carry
    none: their channel names it)."""
    email, phone = _low(key.get("email")), key.get("phone") or None
    if mode in ("profile_id", "custom"):
        candidates: Any = store.profiles
    else:
        candidates = sorted(store.profile_index.get(email or "", set()) | store.profile_index.get(str(phone or ""), set()))
    out = []
    for pid in candidates:
        p = store.profiles[pid]
        if db_id is not None and p.get("db_id") != db_id:
            continue
        subs = p.get("subscriptions") or []
        in_profile_email = email is not None and _low(p.get("email")) == email
        in_sub_email = email is not None and any(_low(s.get("email")) == email for s in subs if s.get("channel") == "email")
        in_profile_phone = phone is not None and phone in (p.get("phones") or [])
        in_sub_phone = phone is not None and any(s.get("phone") == phone for s in subs if s.get("channel") == "sms")
        hit = {
            "email": in_profile_email or in_sub_email, "email_profile": in_profile_email, "email_sub": in_sub_email,
            "phone": in_profile_phone or in_sub_phone, "phone_sub": in_sub_phone,
            "email_phone": in_profile_email or in_profile_phone, "email_phone_sub": in_sub_email or in_sub_phone,
            "profile_id": key.get("profile_id") == pid,
            "custom": key.get("field_name") is not None and p.get(str(key.get("field_name"))) == key.get("field_value"),
        }.get(mode, False)
        if hit:
            out.append(pid)
    return out


def _item_key(item: dict[str, Any], mode: str, root: dict[str, Any]) -> dict[str, Any]:
    """The key an ``import_batch`` item is matched by (INFERRED: each item carries its own)."""
    phones = item.get("phones")
    phone = item.get("phone") or (phones[0] if isinstance(phones, list) and phones else None)
    field_name = root.get("field_name")
    return {"email": item.get("email"), "phone": phone, "profile_id": item.get("profile_id"), "field_name": field_name,
            "field_value": item.get("field_value", item.get(str(field_name)) if field_name else None)}


def _check_profile(data: Any) -> None:
    """Per-item checks of a profile data object (item errors, 400)."""
    if not isinstance(data, dict):
        raise ItemError(400, "profile data must be an object")
    for name, value in data.items():
        if name.startswith("_") and name not in SYSTEM_FIELDS:
            raise ItemError(400, f"unknown system field {name!r}")
        if name in READ_ONLY:
            raise ItemError(400, f"field {name!r} is read-only")
        if name in ("_bdate", "_regdate") and value is not None and (not isinstance(value, str) or not _DATE.fullmatch(value)):
            raise ItemError(400, f"incorrect date in {name}: {value!r}")
        if name == "_sex" and value not in (None, "male", "female", 0, 1, 2):
            raise ItemError(400, f"incorrect _sex: {value!r}")
    email = data.get("email")
    if email is not None and (not isinstance(email, str) or not _EMAIL.fullmatch(email)):
        raise ItemError(400, f"incorrect email: {email!r}")
    phones = data.get("phones")
    if phones is not None and (not isinstance(phones, list)
                               or not all(isinstance(p, str) and _PHONE.fullmatch(p) for p in phones)):
        raise ItemError(400, f"Incorrect phone: {phones!r} (international format, e.g. +79991234567)")
    subs = data.get("subscriptions")
    if subs is not None and not isinstance(subs, list):
        raise ItemError(400, "subscriptions must be an array")
    for i, sub in enumerate(subs or []):
        _check_subscription(i, sub)


def _check_subscription(i: int, sub: Any) -> None:
    where = f"subscriptions[{i}]"
    if not isinstance(sub, dict) or not isinstance(sub.get("resource_id"), int) or isinstance(sub.get("resource_id"), bool):
        raise ItemError(400, f"{where}.resource_id must be an integer")
    if sub.get("channel") not in CHANNELS:
        raise ItemError(400, f"{where}.channel {sub.get('channel')!r} is not a channel")
    if sub["channel"] == "email" and not nonempty(_sub_email(sub)):
        raise ItemError(400, f"{where}: an email subscription needs email")
    if sub["channel"] == "sms" and not (isinstance(sub.get("phone"), str) and _PHONE.fullmatch(sub["phone"])):
        raise ItemError(400, f"{where}: Incorrect phone {sub.get('phone')!r}")
    if sub.get("status") not in (None, -1) and sub.get("status") not in STATUSES:
        raise ItemError(400, f"{where}.status {sub.get('status')!r}")
    if sub.get("priority") is not None and not isinstance(sub.get("priority"), int):
        raise ItemError(400, f"{where}.priority must be an integer")


def _sub_email(sub: dict[str, Any]) -> Any:
    data = sub.get("email_data")
    return sub.get("email") or (data.get("email") if isinstance(data, dict) else None)


def _address(sub: dict[str, Any]) -> str:
    return str(_low(_sub_email(sub)) or sub.get("phone") or sub.get("subscription_id") or "")


def _merge_subscriptions(stored: list[dict[str, Any]], given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """INFERRED: an existing subscription keeps status and priority unless the import gives a value other
    than -1; a new one is ``subscribed`` at priority 0 unless given."""
    out = [dict(s) for s in stored]
    index = {(s["resource_id"], s["channel"], _address(s)): s for s in out}
    for sub in given:
        key = (sub["resource_id"], sub["channel"], _address(sub))
        fresh = {k: v for k, v in sub.items() if k not in ("status", "priority", "email_data")}
        if _sub_email(sub):
            fresh["email"] = _sub_email(sub)
        old = index.get(key)
        if old is None:
            old = {"status": "subscribed", "priority": 0}
            out.append(old)
            index[key] = old
        old.update(fresh)
        for name in ("status", "priority"):
            if sub.get(name) not in (None, -1):
                old[name] = sub[name]
    return out


def _upsert(emu: Account, db_id: Any, mode: str, key: dict[str, Any], data: dict[str, Any]) -> str:
    """Create or update one profile; its id."""
    if mode not in MODES:
        raise ItemError(400, f"matching {mode!r} is not supported")
    forced = emu.faults.reject.get(str(key.get("email") or key.get("phone") or ""))
    if forced:
        raise ItemError(int(forced[0]), str(forced[1]))
    _check_profile(data)
    found = find(emu.store, db_id, mode, key)
    if len(found) > 1:
        raise ItemError(409, "More than one profiles matches, inaccurate match")
    store = emu.store
    if found:
        pid = found[0]
    elif mode == "profile_id":
        raise ItemError(404, "profile not found (profile_id matching only updates)")
    else:
        store.seq += 1
        pid = f"{store.seq:024x}"
        store.internal_id("profile", pid)
        store.profiles[pid] = {"id": pid, "db_id": db_id, "subscriptions": []}
    profile = store.profiles[pid]
    _unindex(store, pid)
    for name, value in data.items():
        if name != "subscriptions":
            profile[name] = value
    profile["subscriptions"] = _merge_subscriptions(profile["subscriptions"], data.get("subscriptions") or [])
    for address in _addresses(profile):
        store.profile_index.setdefault(address, set()).add(pid)
    emu.stats["profile_imports"] += 1
    return pid


def _addresses(profile: dict[str, Any]) -> set[str]:
    found = {_low(profile.get("email")), *(profile.get("phones") or [])}
    found.update(_address(s) for s in profile.get("subscriptions") or [])
    return {a for a in found if a}


def _unindex(store: Store, pid: str) -> None:
    for address in _addresses(store.profiles[pid]):
        store.profile_index.get(address, set()).discard(pid)


def _db_id(body: dict[str, Any]) -> int:
    db_id = body.get("db_id")
    if not isinstance(db_id, int) or isinstance(db_id, bool):
        raise RequestError(400, "incorrect request: db_id is required and must be an integer")
    return db_id


def import_batch(emu: Account, body: dict[str, Any]) -> dict[str, Any]:
    db_id, mode = _db_id(body), str(body.get("matching") or "email")
    data = body.get("data")
    if not isinstance(data, list) or not data:
        raise RequestError(400, "incorrect request: data must be a non-empty array")
    result = []
    for item in data:
        try:
            if not isinstance(item, dict):
                raise ItemError(400, "profile data must be an object")
            pid = _upsert(emu, db_id, mode, _item_key(item, mode, body), item)
        except ItemError as err:
            result.append({"error": err.code, "error_text": err.text})
            continue
        result.append({"error": 0, "error_text": "Successful operation", "profile_id": pid})
    if emu.faults.short_profile_results:
        result = result[:-1]
    return {"result": result}


def import_one(emu: Account, body: dict[str, Any]) -> dict[str, Any]:
    """``profiles/import``: the key at the top level beside ``matching`` (api.md §3), one profile."""
    db_id, mode = _db_id(body), str(body.get("matching") or "email")
    data = body.get("data")
    if not isinstance(data, dict):
        raise RequestError(400, "incorrect request: data must be an object")
    try:
        pid = _upsert(emu, db_id, mode, _top_key(body), data)
    except ItemError as err:
        raise RequestError(err.code, err.text) from None
    return {"profile_id": pid}


def _top_key(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body.get(k) for k in ("email", "phone", "profile_id", "field_name", "field_value")}


def _one(emu: Account, body: dict[str, Any]) -> str:
    found = find(emu.store, _db_id(body), str(body.get("matching") or "email"), _top_key(body))
    if not found:
        raise RequestError(404, "profile not found")
    if len(found) > 1:
        raise RequestError(409, "More than one profiles matches, inaccurate match")
    return found[0]


def get(emu: Account, body: dict[str, Any]) -> dict[str, Any]:
    return {"data": dict(emu.store.profiles[_one(emu, body)])}


def delete(emu: Account, body: dict[str, Any]) -> dict[str, Any]:
    pid = _one(emu, body)
    _unindex(emu.store, pid)
    del emu.store.profiles[pid]
    emu.stats["profile_deletes"] += 1
    return {"data": {"profile_id": pid}}


def page(emu: Account, body: dict[str, Any]) -> dict[str, Any]:
    """``profiles/list``: one database, in creation order, ``limit`` at a time (default 1000)."""
    db_id = _db_id(body)
    try:
        from_id, limit = int(body.get("from_id") or 0), int(body.get("limit") or 1000)
    except (TypeError, ValueError):
        raise RequestError(400, "incorrect request: from_id and limit must be integers") from None
    profiles = emu.store.profiles
    rows = list(itertools.islice(((iid, pid) for iid, pid in emu.store.after("profile", from_id)
                                  if pid in profiles and profiles[pid].get("db_id") == db_id), max(1, limit)))
    return {"data": [dict(emu.store.profiles[pid]) for _, pid in rows],
            "next_from_id": str(rows[-1][0] if rows else from_id)}


def order_profile(emu: Account, item: dict[str, Any]) -> str | None:
    """The profile an order's ``matching`` finds (any database: the channel's is not modelled)."""
    found = find(emu.store, None, str(item.get("matching") or "email"), item)
    return found[0] if len(found) == 1 else None


def require_profile(emu: Account, item: dict[str, Any]) -> None:
    """INFERRED (``require_profiles``): an order whose buyer has no profile is refused."""
    if order_profile(emu, item) is None:
        mode = item.get("matching") or "email"
        raise ItemError(404, f"profile not found (matching {mode!r})")


METHODS: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "profiles/import_batch": import_batch,
    "profiles/import": import_one,
    "profiles/get": get,
    "profiles/list": page,
    "profiles/delete": delete,
}
