"""KMS fixtures: moto's server stands in for AWS KMS, which cannot run here.

It is a real process on a loopback port, spoken to through the same botocore
stack the gateway uses against AWS. It checks encryption contexts and which
key a ciphertext belongs to, as KMS does; it does not refuse ``Decrypt``
under a disabled key, and it answers a ciphertext relabelled with another
key with AccessDenied where KMS answers IncorrectKeyException.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.crypto.kms_keystore import make_client
from tests.storage.conftest import MotoServer, running_moto, s3_session


@pytest.fixture(scope="session")
def kms_server() -> Iterator[MotoServer]:
    with running_moto() as server:
        yield server


@pytest.fixture
def kms(kms_server: MotoServer) -> Any:
    """A KMS client of the session's server, with the keystore's own configuration."""
    return make_client(endpoint_url=kms_server.url, session=s3_session())


def create_kms_key(client: Any, alias: str | None = None) -> str:
    """A new symmetric key; its ARN. With ``alias``, ``alias/<alias>-<random>`` points at it."""
    arn = str(client.create_key(Description="weightgate test KEK")["KeyMetadata"]["Arn"])
    if alias is not None:
        client.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn


def unique_alias() -> str:
    return f"alias/weightgate-{uuid.uuid4().hex[:12]}"
