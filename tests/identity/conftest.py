"""Identity tests run against a gateway that trusts a real identity provider on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.api.background import free_port
from gateway.config import Settings
from tests.identity.idp import AUDIENCE, ISSUER, IdentityProvider, running_idp

ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with running_idp() as provider:
        provider.add_key("ES256")
        yield provider


@pytest.fixture
def settings(tmp_path: Path, idp: IdentityProvider) -> Settings:
    """Three issuers on one provider: plain bearer, DPoP-only, and one-time tokens."""
    common = {
        "audience": AUDIENCE,
        "jwks_url": idp.url,
        "algorithms": ALGORITHMS,
        "jwks_ttl_seconds": 300,
        "jwks_refetch_interval_seconds": 30,
    }
    issuers = [
        {"issuer": ISSUER, **common},
        {"issuer": f"{ISSUER}/dpop", "require_dpop": True, **common},
        {"issuer": f"{ISSUER}/once", "one_time_tokens": True, **common},
    ]
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps(issuers), encoding="utf-8")
    return Settings(
        home=tmp_path / "home",
        keys_dir=tmp_path / "keys",
        url=f"http://127.0.0.1:{free_port()}",
        issuers_file=path,
        # Tokens from the development issuer too, beside the provider's: an explicit opt-in.
        dev_issuer="allow",
    )
