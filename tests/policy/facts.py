"""Building decision requests in tests, one country field at a time."""

from __future__ import annotations

from gateway.policy.decision import DecisionRequest

COUNTRY_FIELDS = ("location", "org_hq", "parent_hq", "ip_country")


def countries_of(request: DecisionRequest) -> dict[str, str | None]:
    return {
        "location": request.location,
        "org_hq": request.org_hq,
        "parent_hq": request.parent_hq,
        "ip_country": request.ip_country,
    }


def with_country(request: DecisionRequest, field: str, value: str | None) -> DecisionRequest:
    """``request`` with one of its four country fields set to ``value``."""
    if field not in COUNTRY_FIELDS:
        raise ValueError(f"{field!r} is not a country field")
    countries = countries_of(request)
    countries[field] = value
    location = countries["location"]
    if location is None:
        raise ValueError("a request always has a location")
    return DecisionRequest(
        location=location,
        org_hq=countries["org_hq"],
        parent_hq=countries["parent_hq"],
        ip_country=countries["ip_country"],
        eccn=request.eccn,
        on=request.on,
    )
