"""Key release: a data key sealed with HPKE to the client's ephemeral key, bound to one grant.

Besides round trips and tampering, the sealed key is checked against a small
independent RFC 9180 implementation (``hpke_reference``) in both directions,
so a client written in another language against the RFC interoperates with
what the gateway sends.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from gateway.crypto.keyrelease import (
    HYBRID,
    SUITE_NAMES,
    ClientKeyPair,
    grant_info,
    has_small_order,
    open_key,
    parse_recipient_key,
    seal_key,
)
from gateway.errors import IntegrityError, InvalidInput
from tests.crypto import hpke_reference

DATA_KEY = bytes(range(100, 132))
EXPIRES = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
GRANT = {
    "grant_id": "g-8c1f0e",
    "subject": "anna",
    "model": "acme/frontier-1",
    "revision": "r1",
    "path": "weights/model-00001-of-00002.safetensors",
}


def info(**changes: str) -> bytes:
    fields = {**GRANT, **changes}
    return grant_info(
        grant_id=fields["grant_id"],
        subject=fields["subject"],
        model=fields["model"],
        revision=fields["revision"],
        path=fields["path"],
        expires_at=EXPIRES,
    )


# -- tests -----------------------------------------------------------------------------


def test_client_with_the_private_key_recovers_the_data_key() -> None:
    client = X25519PrivateKey.generate()
    sealed = seal_key(DATA_KEY, client.public_key(), info())
    assert open_key(sealed, client, info()) == DATA_KEY


def test_sealed_key_is_enc_plus_aes_256_gcm_ciphertext() -> None:
    # 32-byte X25519 encapsulation, 32-byte key, 16-byte tag: nothing else travels.
    sealed = seal_key(DATA_KEY, X25519PrivateKey.generate().public_key(), info())
    assert len(sealed) == 32 + 32 + 16 == 80
    assert SUITE_NAMES["x25519"] == "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM"


def test_sealed_key_opens_with_an_independent_rfc9180_implementation() -> None:
    client = X25519PrivateKey.generate()
    sealed = seal_key(DATA_KEY, client.public_key(), info())
    assert hpke_reference.open_sealed(sealed, client, info()) == DATA_KEY


def test_gateway_opens_what_an_independent_rfc9180_sender_sealed() -> None:
    client = X25519PrivateKey.generate()
    sealed = hpke_reference.seal(DATA_KEY, client.public_key(), info())
    assert open_key(sealed, client, info()) == DATA_KEY


def test_each_release_uses_a_fresh_ephemeral_key() -> None:
    recipient = X25519PrivateKey.generate().public_key()
    first = seal_key(DATA_KEY, recipient, info())
    second = seal_key(DATA_KEY, recipient, info())
    assert first[:32] != second[:32]
    assert first[32:] != second[32:]


@pytest.mark.parametrize(
    "changes",
    [
        {"grant_id": "g-other"},
        {"subject": "mallory"},
        {"model": "acme/frontier-2"},
        {"revision": "r2"},
        {"path": "weights/model-00002-of-00002.safetensors"},
    ],
    ids=["grant_id", "subject", "model", "revision", "path"],
)
def test_wrapped_key_lifted_from_one_grant_does_not_open_under_another(
    changes: dict[str, str],
) -> None:
    client = X25519PrivateKey.generate()
    sealed = seal_key(DATA_KEY, client.public_key(), info())
    with pytest.raises(IntegrityError):
        open_key(sealed, client, info(**changes))


def test_grant_with_an_extended_expiry_does_not_open_the_key() -> None:
    client = X25519PrivateKey.generate()
    sealed = seal_key(DATA_KEY, client.public_key(), info())
    longer = grant_info(**GRANT, expires_at=EXPIRES + timedelta(days=1))
    with pytest.raises(IntegrityError):
        open_key(sealed, client, longer)


def test_grant_info_is_canonical_and_domain_separated() -> None:
    assert info() == (
        b'weightgate.grant.v1\x00{"expires_at":"2026-03-02T09:30:00+00:00",'
        b'"grant_id":"g-8c1f0e","model":"acme/frontier-1",'
        b'"path":"weights/model-00001-of-00002.safetensors","revision":"r1","subject":"anna"}'
    )


def test_leaked_grant_is_useless_without_the_clients_private_key() -> None:
    client, eavesdropper = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    sealed = seal_key(DATA_KEY, client.public_key(), info())
    with pytest.raises(IntegrityError):
        open_key(sealed, eavesdropper, info())


@pytest.mark.parametrize("position", [0, 31, 32, 63, 64, 79])
def test_tampered_sealed_key_fails(position: int) -> None:
    client = X25519PrivateKey.generate()
    sealed = bytearray(seal_key(DATA_KEY, client.public_key(), info()))
    sealed[position] ^= 0x80
    with pytest.raises(IntegrityError):
        open_key(bytes(sealed), client, info())


@pytest.mark.parametrize("length", [0, 31, 32, 47, 79])
def test_truncated_sealed_key_fails(length: int) -> None:
    client = X25519PrivateKey.generate()
    sealed = seal_key(DATA_KEY, client.public_key(), info())
    with pytest.raises(IntegrityError):
        open_key(sealed[:length], client, info())


def test_recipient_key_round_trips_from_base64() -> None:
    public = X25519PrivateKey.generate().public_key()
    encoded = base64.b64encode(public.public_bytes_raw()).decode()
    parsed = parse_recipient_key(encoded)
    assert isinstance(parsed, X25519PublicKey)
    assert parsed.public_bytes_raw() == public.public_bytes_raw()


@pytest.mark.parametrize(
    "encoded",
    [
        "not base64 at all!",
        "AAA",  # bad padding
        "é" * 44,
        base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(),  # urlsafe alphabet: '-' and '_'
        " " + base64.b64encode(bytes(range(1, 33))).decode(),
    ],
)
def test_recipient_key_that_is_not_base64_is_rejected(encoded: str) -> None:
    with pytest.raises(InvalidInput, match="base64"):
        parse_recipient_key(encoded)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 56, 1216])
def test_recipient_key_of_the_wrong_length_is_rejected(length: int) -> None:
    # 56 is X448, 1216 an ML-KEM-768 + X25519 hybrid key: not accepted as X25519.
    encoded = base64.b64encode(bytes([9]) * length).decode()
    with pytest.raises(InvalidInput, match="must be 32 bytes"):
        parse_recipient_key(encoded)


# Points of small order on Curve25519 (u-coordinates, little-endian): every
# shared secret with them is all zeros, which RFC 9180 and RFC 7748 say to
# reject. Listed here independently of the gateway's table: order 1 and 2
# (0 and 1), the two points of order 8, and the encodings of -1, 0 and 1 plus
# p = 2^255 - 19 that X25519 reduces to the same points.
LOW_ORDER_POINTS = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (2**255 - 19 - 1).to_bytes(32, "little"),
    (2**255 - 19).to_bytes(32, "little"),
    (2**255 - 19 + 1).to_bytes(32, "little"),
]
LOW_ORDER_IDS = ["zero", "one", "order8-a", "order8-b", "p-1", "p", "p+1"]


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=LOW_ORDER_IDS)
def test_low_order_recipient_key_is_rejected_up_front(point: bytes) -> None:
    with pytest.raises(InvalidInput, match="low-order"):
        parse_recipient_key(base64.b64encode(point).decode())


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=LOW_ORDER_IDS)
def test_low_order_point_with_the_ignored_top_bit_set_is_rejected(point: bytes) -> None:
    # X25519 clears bit 255 before use, so this is the same point spelled differently.
    spelled = point[:31] + bytes([point[31] | 0x80])
    with pytest.raises(InvalidInput, match="low-order"):
        parse_recipient_key(base64.b64encode(spelled).decode())


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=LOW_ORDER_IDS)
def test_every_listed_point_really_gives_an_all_zero_shared_secret(point: bytes) -> None:
    # The cheap table is only right if each entry is a point the full
    # Diffie-Hellman refuses; cryptography raises on an all-zero result.
    for top_bit in (0, 0x80):
        spelled = point[:31] + bytes([point[31] | top_bit])
        with pytest.raises(ValueError):
            X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(spelled))


@given(
    st.one_of(
        st.binary(min_size=32, max_size=32),
        st.builds(
            lambda point, top: point[:31] + bytes([point[31] | top]),
            st.sampled_from(LOW_ORDER_POINTS),
            st.sampled_from([0, 0x80]),
        ),
    )
)
def test_cheap_check_agrees_with_a_full_diffie_hellman(raw: bytes) -> None:
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(raw))
        zero_secret = False
    except ValueError:
        zero_secret = True
    assert has_small_order(raw) == zero_secret


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=LOW_ORDER_IDS)
def test_low_order_hybrid_key_is_rejected_up_front(point: bytes) -> None:
    quantum = ClientKeyPair.generate(HYBRID).public_bytes[:1184]
    with pytest.raises(InvalidInput, match="low-order"):
        parse_recipient_key(base64.b64encode(quantum + point).decode(), HYBRID)


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=LOW_ORDER_IDS)
def test_low_order_recipient_key_never_yields_a_sealed_key(point: bytes) -> None:
    # Whatever layer catches it, the key must never be sealed under an all-zero
    # shared secret (which anyone could compute).
    with pytest.raises((InvalidInput, ValueError)):
        seal_key(DATA_KEY, X25519PublicKey.from_public_bytes(point), info())


def test_hybrid_key_release_round_trip_and_sizes() -> None:
    keys = ClientKeyPair.generate(HYBRID)
    assert len(keys.public_bytes) == 1184 + 32
    recipient = parse_recipient_key(keys.recipient_key(), HYBRID)
    info = b"weightgate.grant.v1\x00{}"
    sealed = seal_key(bytes(32), recipient, info)
    assert len(sealed) == 1120 + 32 + 16  # X-Wing encapsulation, then the sealed data key
    assert open_key(sealed, keys.private, info) == bytes(32)
    with pytest.raises(IntegrityError):
        open_key(sealed, keys.private, info + b"x")
    with pytest.raises(IntegrityError):
        open_key(sealed, ClientKeyPair.generate(HYBRID).private, info)


@pytest.mark.parametrize(
    ("kem", "length"), [("mlkem768-x25519", 32), ("mlkem768-x25519", 1215), ("x25519", 1216)]
)
def test_key_of_the_wrong_size_for_its_kem_is_refused(kem: str, length: int) -> None:
    with pytest.raises(InvalidInput, match="must be"):
        parse_recipient_key(base64.b64encode(bytes([9]) * length).decode(), kem)


def test_unknown_kem_is_refused() -> None:
    with pytest.raises(InvalidInput, match="recipient_kem"):
        parse_recipient_key(base64.b64encode(bytes(32)).decode(), "rsa-oaep")
