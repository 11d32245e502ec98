"""The development issuer: an explicit opt-in, never trusted beside real issuers by accident.

Anyone who can read its private key mints admin tokens, so a forgotten key
file on a production host must not open the front door.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.api.background import free_port
from gateway.bootstrap import Services, build_services
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.errors import InvalidInput, Unauthenticated
from gateway.identity import dev_issuer
from gateway.identity.principal import Role
from tests.cli.test_cli import assert_one_line_error, run
from tests.conftest import mint


@pytest.fixture
def issuers_file(tmp_path: Path) -> Path:
    """A real issuer configured by the operator (its keys do not matter here)."""
    jwks = tmp_path / "idp.jwks.json"
    jwks.write_text(json.dumps({"keys": []}), encoding="utf-8")
    path = tmp_path / "issuers.json"
    path.write_text(
        json.dumps([{"issuer": "https://login.example.test", "jwks_file": str(jwks)}]),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """This package's gateway trusts a real identity provider; these tests configure their own."""
    return Settings(
        home=tmp_path / "home",
        keys_dir=tmp_path / "keys",
        url=f"http://127.0.0.1:{free_port()}",
        issuers_file=None,
        dev_issuer="auto",
    )


@pytest.fixture
def built() -> Iterator[list[Services]]:
    made: list[Services] = []
    yield made
    for services in made:
        services.close()


def _build(made: list[Services], settings: Settings, clock: FixedClock) -> Services:
    made.append(build_services(settings, clock))
    return made[-1]


def test_dev_issuer_key_left_beside_real_issuers_mints_nothing(
    settings: Settings, clock: FixedClock, issuers_file: Path, built: list[Services]
) -> None:
    init_keys(settings.keys_dir, dev_issuer=True)
    services = _build(built, settings.model_copy(update={"issuers_file": issuers_file}), clock)
    assert not services.dev_issuer_trusted
    with pytest.raises(Unauthenticated, match="not trusted"):
        services.verifier.verify(mint(services, roles=(Role.ADMIN,)))


def test_dev_issuer_beside_real_issuers_only_when_explicitly_allowed(
    settings: Settings, clock: FixedClock, issuers_file: Path, built: list[Services]
) -> None:
    init_keys(settings.keys_dir, dev_issuer=True)
    allowed = settings.model_copy(update={"issuers_file": issuers_file, "dev_issuer": "allow"})
    services = _build(built, allowed, clock)
    assert services.dev_issuer_trusted
    assert services.verifier.verify(mint(services)).subject == "anna"


def test_dev_issuer_alone_is_trusted_once_created(
    settings: Settings, clock: FixedClock, built: list[Services]
) -> None:
    init_keys(settings.keys_dir, dev_issuer=True)
    services = _build(built, settings, clock)
    assert services.dev_issuer_trusted
    assert services.verifier.verify(mint(services)).subject == "anna"


def test_keys_init_creates_no_dev_issuer_unless_asked(
    settings: Settings, clock: FixedClock, built: list[Services]
) -> None:
    created = init_keys(settings.keys_dir)
    assert not any("development" in item for item in created)
    assert not (settings.keys_dir / dev_issuer.PRIVATE_KEY_FILE).exists()
    assert not (settings.keys_dir / dev_issuer.JWKS_FILE).exists()
    assert not _build(built, settings, clock).dev_issuer_trusted
    # Asked for later, on keys that exist: only the issuer is added.
    assert init_keys(settings.keys_dir, dev_issuer=True) == ["development token issuer (EdDSA)"]


def test_a_misspelt_dev_issuer_setting_is_refused(
    settings: Settings, clock: FixedClock, built: list[Services]
) -> None:
    init_keys(settings.keys_dir, dev_issuer=True)
    with pytest.raises(InvalidInput, match="WEIGHTGATE_DEV_ISSUER"):
        _build(built, settings.model_copy(update={"dev_issuer": "alow"}), clock)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    base.update(WEIGHTGATE_HOME=str(tmp_path / "home"), WEIGHTGATE_KEYS_DIR=str(tmp_path / "keys"))
    return base


def test_token_mint_without_a_dev_issuer_names_the_command_that_creates_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    created = run(env, "keys", "init")
    assert created.returncode == 0 and "development" not in created.stdout
    mint_args = ("token", "mint", "--sub", "anna", "--org", "rhein", "--country", "DE")
    refused = run(env, *mint_args)
    assert_one_line_error(refused, 4, "weightgate keys init --dev-issuer")
    assert str(tmp_path / "keys") in refused.stderr
    added = run(env, "keys", "init", "--dev-issuer")
    assert added.returncode == 0 and "development token issuer" in added.stdout
    minted = run(env, *mint_args)
    assert minted.returncode == 0, minted.stderr
    assert minted.stdout.count(".") == 2
