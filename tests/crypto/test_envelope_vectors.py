"""Known-answer vectors for envelope v2: a grant saved today must open with every client we ship.

See ``tests/vectors/generate_envelope.py`` for how the vectors were made. Each
is checked three ways: the gateway's client code opens it; the gateway's
sealer rebuilds every wrapped file key byte for byte from the fixed inputs;
and plain HKDF (RFC 5869, written out below) and AES-GCM rebuild the wrap key
and every wrapped file key without the gateway's code. For X25519 the sealed
grant key is also rebuilt byte for byte by an independent RFC 9180
implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.canonical import canonical_json
from gateway.crypto.envelope import V2, GrantBinding, GrantOpener, GrantSealer
from gateway.crypto.keyrelease import HYBRID, X25519, ClientKeyPair, open_key
from gateway.errors import IntegrityError
from tests.crypto import hpke_reference

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTORS = {
    kem: json.loads((VECTOR_DIR / f"envelope-v2-{name}.json").read_text())
    for kem, name in ((X25519, "x25519"), (HYBRID, "hybrid"))
}


@pytest.fixture(params=[X25519, HYBRID], ids=["x25519", "hybrid"])
def vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    loaded: dict[str, Any] = VECTORS[request.param]
    return loaded


def _binding(vector: dict[str, Any]) -> GrantBinding:
    grant = vector["grant"]
    return GrantBinding(
        grant["grant_id"],
        grant["subject"],
        grant["model"],
        grant["revision"],
        datetime.fromisoformat(grant["expires_at"]),
    )


def _keys(vector: dict[str, Any]) -> ClientKeyPair:
    classical = X25519PrivateKey.from_private_bytes(
        bytes.fromhex(vector["recipient_x25519_private"])
    )
    seed = vector.get("recipient_mlkem768_seed")
    quantum = mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes.fromhex(seed)) if seed else None
    return ClientKeyPair(classical, quantum)


def _hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    # RFC 5869 with no salt (HashLen zero bytes), written out.
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm, counter = okm + block, counter + 1
    return okm[:length]


def test_vector_recipient_key_is_the_one_its_private_key_makes(vector: dict[str, Any]) -> None:
    assert _keys(vector).public_bytes.hex() == vector["recipient_public"]
    assert _keys(vector).kem == vector["recipient_kem"]


def test_grant_key_info_and_file_aad_are_exactly_as_documented(vector: dict[str, Any]) -> None:
    grant = vector["grant"]
    assert bytes.fromhex(vector["grant_key_info"]) == (
        b"weightgate.envelope.v2.grant-key\x00" + canonical_json(grant)
    )
    assert _binding(vector).grant_key_info().hex() == vector["grant_key_info"]
    for file in vector["files"]:
        expected = b"weightgate.envelope.v2.file-key\x00" + canonical_json(
            {
                "grant_id": grant["grant_id"],
                "model": grant["model"],
                "revision": grant["revision"],
                "path": file["path"],
                "file_version": file["file_version"],
            }
        )
        assert bytes.fromhex(file["aad"]) == expected
        assert _binding(vector).file_key_aad(file["path"], file["file_version"]) == expected


def test_gateway_client_opens_the_stored_grant(vector: dict[str, Any]) -> None:
    private = _keys(vector).private
    sealed = bytes.fromhex(vector["sealed_grant_key"])
    info = bytes.fromhex(vector["grant_key_info"])
    assert open_key(sealed, private, info).hex() == vector["grant_key"]
    opener = GrantOpener(V2, private, _binding(vector), sealed)
    for file in vector["files"]:
        wrapped = bytes.fromhex(file["wrapped_key"])
        assert (
            opener.open_file_key(wrapped, file["path"], file["file_version"]).hex()
            == (file["data_key"])
        )


def test_independent_hkdf_and_aes_gcm_rebuild_every_wrapped_key(vector: dict[str, Any]) -> None:
    grant_key = bytes.fromhex(vector["grant_key"])
    wrap_key = _hkdf_sha256(grant_key, b"weightgate.envelope.v2.file-key-wrap", 32)
    assert wrap_key.hex() == vector["wrap_key"]
    for file in vector["files"]:
        nonce = bytes.fromhex(file["nonce"])
        sealed = AESGCM(wrap_key).encrypt(
            nonce, bytes.fromhex(file["data_key"]), bytes.fromhex(file["aad"])
        )
        assert (b"\x02" + nonce + sealed).hex() == file["wrapped_key"]
        assert len(bytes.fromhex(file["wrapped_key"])) == 61


def test_gateway_sealer_rebuilds_every_wrapped_key_byte_for_byte(vector: dict[str, Any]) -> None:
    files = vector["files"]
    # The grant key, then every file's nonce in one draw, as the sealer asks.
    draws = iter(
        [bytes.fromhex(vector["grant_key"]), b"".join(bytes.fromhex(f["nonce"]) for f in files)]
    )
    sealer = GrantSealer(
        V2, _keys(vector).private.public_key(), _binding(vector), random=lambda _n: next(draws)
    )
    wrapped = sealer.seal_file_keys(
        [(bytes.fromhex(f["data_key"]), f["path"], f["file_version"]) for f in files]
    )
    assert [w.hex() for w in wrapped] == [f["wrapped_key"] for f in files]


def test_independent_rfc9180_rebuilds_the_x25519_sealed_grant_key() -> None:
    vector = VECTORS[X25519]
    recipient = _keys(vector).classical
    sealed = hpke_reference.seal(
        bytes.fromhex(vector["grant_key"]),
        recipient.public_key(),
        bytes.fromhex(vector["grant_key_info"]),
        X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["ephemeral_x25519_private"])),
    )
    assert sealed.hex() == vector["sealed_grant_key"]
    assert len(sealed) == 32 + 32 + 16
    opened = hpke_reference.open_sealed(sealed, recipient, bytes.fromhex(vector["grant_key_info"]))
    assert opened.hex() == vector["grant_key"]


def test_hybrid_sealed_grant_key_is_an_x_wing_encapsulation_and_a_sealed_key() -> None:
    assert len(bytes.fromhex(VECTORS[HYBRID]["sealed_grant_key"])) == 1120 + 32 + 16


def test_stored_grant_under_another_recipient_key_does_not_open(vector: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError, match="does not open"):
        GrantOpener(
            V2,
            ClientKeyPair.generate(vector["recipient_kem"]).private,
            _binding(vector),
            bytes.fromhex(vector["sealed_grant_key"]),
        )


def test_generator_reports_the_stored_vectors_current() -> None:
    from tests.vectors import generate_envelope  # noqa: PLC0415  (a script, not a module)

    assert generate_envelope.main(["--check"]) == 0
