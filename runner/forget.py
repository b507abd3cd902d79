"""``altcraft-sync forget --customer ID``: deleting a person is an explicit request, never a sync's side effect.

What is deleted is what the ledger says was sent for that person: the profile records a shop customer (or
a profile key, ``email:<address>`` / ``phone:<number>``) has in the profile streams, and every record of a
stream owned by profiles (orders) whose ``owner`` is one of those profiles. Orders go first (their delete
method), then each profile (``profiles/delete`` by the ``profile_id`` Altcraft returned; by its key when the
ledger has no id). Each deletion is written to the ledger as ``deleted``. A dry run lists the same plan
and touches nothing.

A customer still in the shop, unchanged and not marked deleted, would be sent again by a later sync: mark
the person deleted in the shop (the section's ``deleted_flag``) or remove the row first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from altcraft_sync import streams as registry
from altcraft_sync.config import Config
from altcraft_sync.errors import SyncError
from altcraft_sync.sources import ProfilesStream
from connectors.altcraft import AltcraftClient
from connectors.altcraft_profiles import ProfileClient, key_of
from connectors.state import LedgerEntry, LedgerRow, StateStore


@dataclass
class ForgetPlan:
    """What ``forget`` deletes (or would): profile records and the records sent for them."""

    who: str
    profiles: list[LedgerRow] = field(default_factory=list)
    owned: dict[str, list[LedgerRow]] = field(default_factory=dict)
    """Stream name -> its records sent for these profiles."""
    done: list[tuple[str, str, str]] = field(default_factory=list)
    """(entity, external_id, outcome) of each deletion, once carried out."""

    def lines(self) -> list[str]:
        out = [f"profile {r.external_id} ({r.entity} {r.source_pk}, profile_id {r.altcraft_id or 'unknown'}, "
               f"{r.status})" for r in self.profiles]
        for stream, rows in self.owned.items():
            out += [f"{registry.get(stream).entity} {r.external_id} (sent for {r.owner})" for r in rows]
        return out


def plan_forget(config: Config, state: StateStore, who: str) -> ForgetPlan:
    """The ledger's profile records of ``who`` in the configured profile streams, and what was sent for them."""
    people = [s for s in registry.profile_streams() if config.streams.section(s.name) is not None]
    if not people:
        raise SyncError("forget: no profile stream (customers, guests) is configured")
    # every record, whatever its status: one marked deleted because it left the shop is still in Altcraft,
    # and deleting an absent profile again counts as done
    plan = ForgetPlan(who, state.people([s.entity for s in people], who))
    if not plan.profiles:
        raise SyncError(f"forget: the ledger holds no profile for {who!r} (a shop customer id, or email:<address> "
                        "/ phone:<number>)")
    keys = [r.external_id for r in plan.profiles]
    for spec in registry.all_specs():
        if spec.owned_by and config.streams.section(spec.name) is not None:
            plan.owned[spec.name] = state.owned(spec.entity, keys)
    return plan


def carry_out(config: Config, state: StateStore, client: AltcraftClient, plan: ForgetPlan) -> ForgetPlan:
    """Delete the planned records in Altcraft, dependents first, and write each outcome to the ledger."""
    for stream, rows in plan.owned.items():
        spec = registry.get(stream)
        if not rows or spec.delete_method is None:
            continue
        report = client.delete_records(spec.delete_method, [r.external_id for r in rows], one_by_one=spec.delete_one_by_one)
        entries = []
        for r in rows:
            o = report.outcomes[r.external_id]
            status = "deleted" if o.status == "delivered" else o.status
            plan.done.append((spec.entity, r.external_id, status if not o.text else f"{status} ({o.code} {o.text})"))
            entries.append(LedgerEntry(spec.entity, r.external_id, r.source_pk, None, status, o.code or None,
                                       o.text or None, o.permanent))
        state.commit_chunk(stream=stream, entries=entries)
    profiles = ProfileClient(client)
    for r in plan.profiles:
        spec = registry.of_entity(r.entity)
        section = config.streams.section(spec.name)
        assert isinstance(section, ProfilesStream)
        fld, value = key_of(r.external_id)
        o = profiles.delete_profile(section.db_id, r.altcraft_id, key=(section.mode_for(fld), fld, value))
        status = "deleted" if o.status == "delivered" else o.status
        plan.done.append((r.entity, r.external_id, status if not o.text else f"{status} ({o.code} {o.text})"))
        state.commit_chunk(stream=spec.name, entries=[LedgerEntry(
            r.entity, r.external_id, r.source_pk, None, status, o.code or None, o.text or None, o.permanent)])
    return plan
