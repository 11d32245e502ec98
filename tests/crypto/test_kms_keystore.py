"""The KMS keystore against moto's KMS (a real server process standing in for AWS KMS).

What only KMS has: aliases, the encryption context KMS binds and logs, keys
that can be disabled, and a service that can be unreachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.api.background import free_port
from gateway.bootstrap import build_keystore
from gateway.config import Settings
from gateway.crypto.keystore import LocalKeystore, MigratingKeystore
from gateway.crypto.kms_keystore import KmsKeystore, make_client, parse_key_reference
from gateway.errors import IntegrityError, InvalidInput, NotFound, Unavailable
from tests.crypto.conftest import create_kms_key, unique_alias
from tests.crypto.test_keystore import DATA_KEY, file_identity
from tests.storage.conftest import isolate_aws_environment, running_moto, s3_session


def test_a_keystore_named_by_alias_records_the_keys_arn_not_the_alias(kms: Any) -> None:
    alias = unique_alias()
    arn = create_kms_key(kms, alias)
    keystore = KmsKeystore(alias, client=kms)
    kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
    # An alias can be moved to another key; the row must name the key that wrapped it.
    assert kek_id == f"kms:{arn}"
    assert keystore.current_id() == kek_id
    assert keystore.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY


def test_the_files_identity_is_the_encryption_context_kms_holds_it_to(kms: Any) -> None:
    arn = create_kms_key(kms)
    _, wrapped = KmsKeystore(arn, client=kms).wrap(DATA_KEY, file_identity())
    # Decrypted by KMS directly with the file's identity: this is what CloudTrail logs.
    plain = kms.decrypt(
        CiphertextBlob=wrapped[1:],
        KeyId=arn,
        EncryptionContext={**file_identity(), "weightgate": "dek.v1"},
    )["Plaintext"]
    assert plain == DATA_KEY


def test_a_ciphertext_made_with_the_same_key_for_another_purpose_does_not_unwrap(
    kms: Any,
) -> None:
    # Another service sharing the key encrypts something with a context that
    # looks like a file's: without weightgate's mark it is not a data key.
    arn = create_kms_key(kms)
    foreign = kms.encrypt(KeyId=arn, Plaintext=DATA_KEY, EncryptionContext=file_identity())
    with pytest.raises(IntegrityError):
        KmsKeystore(arn, client=kms).unwrap(
            f"kms:{arn}", b"\x01" + foreign["CiphertextBlob"], file_identity()
        )


def test_a_wrapped_key_relabelled_with_another_kms_key_is_not_released(kms: Any) -> None:
    first, second = create_kms_key(kms), create_kms_key(kms)
    keystore = KmsKeystore(first, client=kms)
    _, wrapped = keystore.wrap(DATA_KEY, file_identity())
    # AWS answers IncorrectKeyException (IntegrityError); moto answers AccessDenied
    # (Unavailable). Either way nothing is released.
    with pytest.raises((IntegrityError, Unavailable)):
        keystore.unwrap(f"kms:{second}", wrapped, file_identity())


def test_a_disabled_key_makes_the_keystore_unready(kms: Any) -> None:
    arn = create_kms_key(kms)
    keystore = KmsKeystore(arn, client=kms)
    keystore.check()
    kms.disable_key(KeyId=arn.rsplit("/", 1)[1])
    with pytest.raises(Unavailable, match="Disabled"):
        keystore.check()


def test_unreachable_kms_is_unavailable_not_a_crash() -> None:
    # Nothing listens on this port: every call fails to connect.
    client = make_client(endpoint_url=f"http://127.0.0.1:{free_port()}", session=s3_session())
    arn = "arn:aws:kms:eu-central-1:123456789012:key/1b86a0f4-dce2-41e0-95ef-cc1817852eb6"
    keystore = KmsKeystore(arn, client=client)
    with pytest.raises(Unavailable, match="KMS Encrypt failed"):
        keystore.wrap(DATA_KEY, file_identity())
    with pytest.raises(Unavailable, match="KMS Decrypt failed"):
        keystore.unwrap(f"kms:{arn}", b"\x01" + bytes(100), file_identity())
    with pytest.raises(Unavailable):
        keystore.check()


def test_kms_that_stops_answering_mid_life_is_unavailable() -> None:
    with running_moto() as server:
        client = make_client(endpoint_url=server.url, session=s3_session())
        keystore = KmsKeystore(create_kms_key(client), client=client)
        kek_id, wrapped = keystore.wrap(DATA_KEY, file_identity())
        server.stop()
        with pytest.raises(Unavailable):
            keystore.unwrap(kek_id, wrapped, file_identity())


def test_retiring_a_kms_kek_disables_the_key_and_an_unknown_key_is_not_found(kms: Any) -> None:
    old, new = create_kms_key(kms), create_kms_key(kms)
    keystore = KmsKeystore(new, client=kms)
    keystore.retire(f"kms:{old}")
    assert kms.describe_key(KeyId=old)["KeyMetadata"]["KeyState"] == "Disabled"
    missing = "arn:aws:kms:eu-central-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    with pytest.raises(NotFound):
        keystore.retire(f"kms:{missing}")
    with pytest.raises(InvalidInput):
        keystore.retire("local:v1")


@pytest.mark.parametrize(
    "spec",
    [
        "kms:",
        "kms:alias/",
        "kms:my key",
        "kms:arn:aws:kms:eu-central-1:123456789012:key/../../x",
        "kms:arn:aws:s3:::bucket",
        "kms:alias/" + "a" * 300,
        "kms:alias/x\n",
        "vault:x",
    ],
)
def test_a_malformed_key_reference_is_refused_with_a_clear_message(spec: str) -> None:
    with pytest.raises(InvalidInput, match="WEIGHTGATE_KEYSTORE"):
        parse_key_reference(spec)


@pytest.mark.parametrize(
    "spec",
    [
        "kms:alias/weightgate/prod",
        "kms:1b86a0f4-dce2-41e0-95ef-cc1817852eb6",
        "kms:mrk-1b86a0f4dce241e095efcc1817852eb6",
        "kms:arn:aws:kms:eu-central-1:123456789012:key/1b86a0f4-dce2-41e0-95ef-cc1817852eb6",
        "kms:arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/weightgate",
    ],
)
def test_each_way_kms_names_a_key_is_accepted(spec: str) -> None:
    assert parse_key_reference(spec) == spec.removeprefix("kms:")


def test_the_keystore_setting_picks_the_implementation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_aws_environment(monkeypatch, tmp_path, credentials=True)
    local = build_keystore(Settings(keys_dir=tmp_path / "keys"))
    assert isinstance(local, LocalKeystore)
    kms = build_keystore(
        Settings(keystore="kms:alias/weightgate", kms_endpoint_url="http://127.0.0.1:9")
    )
    assert isinstance(kms, MigratingKeystore)
    with pytest.raises(InvalidInput, match="WEIGHTGATE_KEYSTORE"):
        build_keystore(Settings(keystore="vault:secret/kek"))
    with pytest.raises(InvalidInput, match="WEIGHTGATE_KMS_ENDPOINT_URL"):
        build_keystore(Settings(keystore="kms:alias/weightgate", kms_endpoint_url="not a url"))


def test_a_current_key_kms_does_not_have_is_unavailable_not_not_found(kms: Any) -> None:
    # Readiness and grants must answer 503 (nothing can be wrapped or released),
    # not 404 as if the request had named something absent.
    keystore = KmsKeystore(unique_alias(), client=kms)
    with pytest.raises(Unavailable, match="NotFoundException"):
        keystore.check()
    with pytest.raises(Unavailable):
        keystore.wrap(DATA_KEY, file_identity())
    assert not keystore.holds(
        "kms:arn:aws:kms:eu-central-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    )
