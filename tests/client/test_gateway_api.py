"""The client turns each problem+json answer back into its own, distinct, actionable error."""

from __future__ import annotations

import httpx
import pytest

from gateway import errors
from gateway.client.gateway_api import raise_for_problem


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (401, {"detail": "token has expired"}, errors.Unauthenticated, "token has expired"),
        (
            403,
            {
                "code": "policy_denied",
                "detail": "denied",
                "tier": 3,
                "reasons": [{"code": "TIER3_BY_ORG_HQ"}],
            },
            errors.PolicyDenied,
            "denied",
        ),
        (403, {"detail": "this needs the admin role"}, errors.Forbidden, "admin role"),
        (404, {"detail": "no model"}, errors.NotFound, "no model"),
        (410, {"detail": "grant g has revoked", "state": "revoked"}, errors.Gone, "revoked"),
        (422, {"detail": "bad"}, errors.InvalidInput, "bad"),
        (429, {"detail": "grants per hour used up"}, errors.QuotaExceeded, "try again in 30"),
        (503, {"detail": "audit log down"}, errors.Unavailable, "audit log down"),
        (502, {}, errors.Unavailable, "HTTP 502"),
    ],
    ids=["401", "403-policy", "403-role", "404", "410", "422", "429", "503", "502-no-body"],
)
def test_problem_answers_map_to_distinct_errors(
    status: int, body: dict[str, object], kind: type[errors.WeightgateError], text: str
) -> None:
    response = httpx.Response(status, json=body, headers={"Retry-After": "30"})
    with pytest.raises(kind, match=text) as raised:
        raise_for_problem(response)
    assert type(raised.value) is kind
    if status == 403 and kind is errors.PolicyDenied:
        assert raised.value.detail["decision"]["tier"] == 3
    if status == 410:
        assert raised.value.detail["state"] == "revoked"


def test_success_is_not_an_error() -> None:
    raise_for_problem(httpx.Response(201, json={"id": "g"}))
