"""Explaining a decision without a request: validated inputs in, ``decide()`` out."""

from __future__ import annotations

from datetime import date

from gateway.errors import InvalidInput
from gateway.policy.countries import country_code
from gateway.policy.decision import Decision, DecisionRequest, decide
from gateway.policy.pack import Eccn, PolicyPack


def explain(
    pack: PolicyPack,
    *,
    country: str,
    org_hq: str | None,
    parent_hq: str | None = None,
    ip_country: str | None = None,
    eccn: str = Eccn.AI_MODEL_WEIGHTS.value,
    on: date,
) -> Decision:
    """What ``pack`` decides for these facts.

    Without ``org_hq`` the location stands in for headquarters: the question
    asked is then "a requester in COUNTRY whose organisation is also there".
    """
    try:
        classification = Eccn(eccn.upper())
    except ValueError:
        raise InvalidInput(f"eccn must be one of {[e.value for e in Eccn]}") from None
    location = country_code(country, what="country")
    return decide(
        DecisionRequest(
            location=location,
            # Test for None, not truthiness: "" is a malformed code, not an absent one.
            org_hq=location if org_hq is None else country_code(org_hq, what="org headquarters"),
            parent_hq=_optional(parent_hq, "parent headquarters"),
            ip_country=_optional(ip_country, "IP country"),
            eccn=classification,
            on=on,
        ),
        pack,
    )


def _optional(value: str | None, what: str) -> str | None:
    return None if value is None else country_code(value, what=what)
