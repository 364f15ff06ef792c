"""What changed for one tenancy between last night's snapshot and tonight's.

A tenancy new to the export is compared with an empty baseline (no arrears, no notice, no
homelessness application), so a first snapshot reports tenancies started together with the
arrears, notices and applications they already have. The snapshot job marks those as the
initial load (README, "Initial loads"); a tenancy new to a later export is a real new tenancy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from connectors.housing_csv.tenancy_state import TenancyState


@dataclass(frozen=True)
class Change:
    """One event-worthy change; `threshold_weeks` only for arrears_threshold_crossed."""

    event_type: str
    threshold_weeks: int | None = None


NOTICE_EVENTS = {
    "notice_seeking_possession": "notice_served",
    "notice_to_quit": "notice_served",
    "eviction_warrant": "eviction_warrant_issued",
}
HOMELESSNESS_EVENTS = {
    "open": "homelessness_application_opened",
    "accepted": "homelessness_application_accepted",
    "closed": "homelessness_application_closed",
}


def changes(
    previous: TenancyState | None, current: TenancyState, thresholds_weeks: Sequence[int]
) -> list[Change]:
    """The changes from `previous` (None: not in the last snapshot) to `current`, in the
    order a reader expects them (a tenancy starts before anything happens to it)."""
    found: list[Change] = []
    was_active = previous is not None and previous.status == "active"
    if current.status == "active" and not was_active:
        found.append(Change("tenancy_started"))
    found.extend(_arrears(previous, current, thresholds_weeks))
    if current.notice != (previous.notice if previous else "none"):
        event = NOTICE_EVENTS.get(current.notice)
        if event is not None:
            found.append(Change(event))
    homelessness = previous.homelessness_application if previous else "none"
    if current.homelessness_application != homelessness:
        event = HOMELESSNESS_EVENTS.get(current.homelessness_application)
        if event is not None:
            found.append(Change(event))
    if previous is not None and previous.details() != current.details():
        found.append(Change("tenant_details_changed"))
    if current.status == "ended" and was_active:
        found.append(Change("tenancy_ended"))
    return found


def _arrears(
    previous: TenancyState | None, current: TenancyState, thresholds_weeks: Sequence[int]
) -> list[Change]:
    before = previous.arrears_weeks if previous else 0.0
    return [
        Change("arrears_threshold_crossed", threshold)
        for threshold in thresholds_weeks
        if before < threshold <= current.arrears_weeks
    ]


def disappeared(previous: TenancyState, as_of: date) -> tuple[TenancyState, Change] | None:
    """A tenancy missing from tonight's export has ended, if it was active: the event carries
    its last known state, marked ended as of tonight's snapshot date."""
    if previous.status != "active":
        return None
    return replace(previous, status="ended", as_of=as_of), Change("tenancy_ended")
