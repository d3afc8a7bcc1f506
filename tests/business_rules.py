"""A business rule for the tests, as a team would write one (README, "Decisions")."""

from __future__ import annotations

from streamserve.records import Features, LabelValue, Scored


def never_decline_small(
    features: Features, scored: Scored, decision: LabelValue | None
) -> LabelValue | None:
    """Orders under 5 (in the event's ``amount``) are never declined."""
    amount = features.get("amount")
    if isinstance(amount, int | float) and amount < 5.0:
        return True
    return decision
