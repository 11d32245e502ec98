"""Envelope v2: one sealed grant key per grant, each file key wrapped under it, bound to its file.

The attacks: a wrapped file key moved to another grant, to another path of
the same grant, onto another file's entry, or onto an entry whose file
version changed; a sealed grant key moved to another grant or requester; an
extended expiry; any byte flipped. Each is refused with the one opaque
integrity error.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from gateway.canonical import canonical_json
from gateway.crypto.envelope import (
    ENVELOPES,
    FILE_KEY_LABEL,
    V1,
    V2,
    WRAPPED_FILE_KEY_SIZE,
    GrantBinding,
    GrantOpener,
    GrantSealer,
    choose_envelope,
)
from gateway.crypto.keyrelease import HYBRID, X25519, ClientKeyPair
from gateway.errors import IntegrityError, InvalidInput

BINDING = GrantBinding(
    grant_id="g-8c1f0e",
    subject="anna",
    model="acme/frontier-1",
    revision="r1",
    expires_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
)
FIRST = ("model-00001-of-00002.safetensors", "0f1e2d3c4b5a69788796a5b4c3d2e1f0")
SECOND = ("model-00002-of-00002.safetensors", "ffeeddccbbaa99887766554433221100")
KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))

KEYS = {kem: ClientKeyPair.generate(kem) for kem in (X25519, HYBRID)}


def _grant(
    kem: str = X25519, binding: GrantBinding = BINDING, version: str = V2
) -> tuple[GrantSealer, bytes, bytes]:
    sealer = GrantSealer(version, KEYS[kem].private.public_key(), binding)
    return sealer, sealer.seal_file_key(KEY_A, *FIRST), sealer.seal_file_key(KEY_B, *SECOND)


def _opener(sealer: GrantSealer, binding: GrantBinding = BINDING, kem: str = X25519) -> GrantOpener:
    return GrantOpener(sealer.version, KEYS[kem].private, binding, sealer.sealed_grant_key)


@pytest.mark.parametrize("kem", [X25519, HYBRID])
@pytest.mark.parametrize("version", [V2, V1])
def test_both_envelopes_round_trip_for_both_kems(kem: str, version: str) -> None:
    sealer, first, second = _grant(kem, version=version)
    opener = _opener(sealer, kem=kem)
    assert opener.open_file_key(first, *FIRST) == KEY_A
    assert opener.open_file_key(second, *SECOND) == KEY_B


def test_v2_seals_one_grant_key_and_small_wrapped_file_keys() -> None:
    sealer, first, second = _grant()
    assert sealer.sealed_grant_key is not None
    assert len(sealer.sealed_grant_key) == 32 + 32 + 16
    assert len(first) == len(second) == WRAPPED_FILE_KEY_SIZE == 61
    assert first[0] == second[0] == 0x02
    assert first[1:13] != second[1:13]  # a fresh nonce per file


def test_v1_has_no_grant_key() -> None:
    sealer, first, _ = _grant(version=V1)
    assert sealer.sealed_grant_key is None
    assert len(first) == 32 + 32 + 16


def test_each_grant_draws_a_fresh_grant_key() -> None:
    one, first_one, _ = _grant()
    two, first_two, _ = _grant()
    assert one.sealed_grant_key != two.sealed_grant_key
    with pytest.raises(IntegrityError):
        _opener(two).open_file_key(first_one, *FIRST)
    assert _opener(two).open_file_key(first_two, *FIRST) == KEY_A


@pytest.mark.parametrize("kem", [X25519, HYBRID])
def test_file_key_moved_to_another_grant_does_not_open(kem: str) -> None:
    # Same requester, same model, same file, even the same grant id: another
    # grant key, so the wrapped key is useless there.
    _, lifted, _ = _grant(kem)
    other, _, _ = _grant(kem)
    with pytest.raises(IntegrityError, match="does not open"):
        _opener(other, kem=kem).open_file_key(lifted, *FIRST)


def test_file_key_opened_under_another_grant_id_does_not_open() -> None:
    # Even were the grant key the same, the aad names the grant.
    public = KEYS[X25519].private.public_key()
    sealer = GrantSealer(V2, public, BINDING, random=bytes)  # an all-zero grant key and nonce
    wrapped = sealer.seal_file_key(KEY_A, *FIRST)
    renamed = dataclasses.replace(BINDING, grant_id="g-other")
    twin = GrantSealer(V2, public, renamed, random=bytes)
    with pytest.raises(IntegrityError):
        _opener(twin, renamed).open_file_key(wrapped, *FIRST)


def test_file_key_moved_to_another_path_does_not_open() -> None:
    sealer, first, _ = _grant()
    with pytest.raises(IntegrityError):
        _opener(sealer).open_file_key(first, "model-00003-of-00003.safetensors", FIRST[1])


def test_swapped_file_entries_do_not_open() -> None:
    # The wrapped keys of two files of one grant, each put on the other's entry.
    sealer, first, second = _grant()
    opener = _opener(sealer)
    with pytest.raises(IntegrityError):
        opener.open_file_key(second, *FIRST)
    with pytest.raises(IntegrityError):
        opener.open_file_key(first, *SECOND)


def test_file_key_on_an_entry_with_another_file_version_does_not_open() -> None:
    sealer, first, _ = _grant()
    with pytest.raises(IntegrityError):
        _opener(sealer).open_file_key(first, FIRST[0], SECOND[1])


@pytest.mark.parametrize(
    "changes",
    [
        {"grant_id": "g-other"},
        {"subject": "mallory"},
        {"model": "acme/frontier-2"},
        {"revision": "r2"},
        {"expires_at": BINDING.expires_at + timedelta(days=1)},
    ],
    ids=["grant_id", "subject", "model", "revision", "extended-expiry"],
)
@pytest.mark.parametrize("kem", [X25519, HYBRID])
def test_sealed_grant_key_presented_as_another_grant_does_not_open(
    kem: str, changes: dict[str, object]
) -> None:
    sealer, _, _ = _grant(kem)
    with pytest.raises(IntegrityError, match="grant key does not open"):
        _opener(sealer, dataclasses.replace(BINDING, **changes), kem=kem)  # type: ignore[arg-type]


def test_grant_key_is_useless_without_the_clients_private_key() -> None:
    sealer, _, _ = _grant()
    with pytest.raises(IntegrityError):
        GrantOpener(V2, X25519PrivateKey.generate(), BINDING, sealer.sealed_grant_key)


def test_v2_grant_without_its_grant_key_is_refused() -> None:
    with pytest.raises(IntegrityError):
        GrantOpener(V2, KEYS[X25519].private, BINDING, None)


def test_unknown_envelope_in_a_grant_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="envelope 'v9'"):
        GrantOpener("v9", KEYS[X25519].private, BINDING, None)


SEALER = GrantSealer(V2, KEYS[X25519].private.public_key(), BINDING)
OPENER = _opener(SEALER)


@given(
    key=st.binary(min_size=32, max_size=32),
    path=st.text(min_size=1, max_size=200),
    file_version=st.text(alphabet="0123456789abcdef", min_size=1, max_size=64),
)
def test_any_file_key_round_trips_under_its_own_file(
    key: bytes, path: str, file_version: str
) -> None:
    assert OPENER.open_file_key(SEALER.seal_file_key(key, path, file_version), path, file_version)


@given(
    key=st.binary(min_size=32, max_size=32),
    position=st.integers(min_value=0, max_value=WRAPPED_FILE_KEY_SIZE - 1),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_flipped_byte_of_a_wrapped_file_key_is_refused(
    key: bytes, position: int, flip: int
) -> None:
    wrapped = bytearray(SEALER.seal_file_key(key, *FIRST))
    wrapped[position] ^= flip
    with pytest.raises(IntegrityError, match="does not open under this grant"):
        OPENER.open_file_key(bytes(wrapped), *FIRST)


@given(cut=st.integers(min_value=0, max_value=WRAPPED_FILE_KEY_SIZE - 1), extra=st.binary())
def test_truncated_or_extended_wrapped_file_key_is_refused(cut: int, extra: bytes) -> None:
    wrapped = SEALER.seal_file_key(KEY_A, *FIRST)
    with pytest.raises(IntegrityError):
        OPENER.open_file_key(wrapped[:cut], *FIRST)
    if extra:
        with pytest.raises(IntegrityError):
            OPENER.open_file_key(wrapped + extra, *FIRST)


@given(position=st.integers(min_value=0, max_value=32 + 32 + 16 - 1))
def test_any_flipped_byte_of_the_sealed_grant_key_is_refused(position: int) -> None:
    assert SEALER.sealed_grant_key is not None
    sealed = bytearray(SEALER.sealed_grant_key)
    sealed[position] ^= 0x01
    with pytest.raises(IntegrityError):
        GrantOpener(V2, KEYS[X25519].private, BINDING, bytes(sealed))


def test_wrapped_key_of_the_wrong_length_fails_at_sealing() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SEALER.seal_file_key(bytes(16), *FIRST)


@pytest.mark.parametrize(
    ("announced", "chosen"),
    [
        (None, V1),
        ((), V1),
        ((V2, V1), V2),
        ((V1, V2), V1),
        ((V2,), V2),
        ((V1,), V1),
        (("v9", V2), V2),
    ],
)
def test_the_first_announced_envelope_we_issue_is_chosen(
    announced: tuple[str, ...] | None, chosen: str
) -> None:
    assert choose_envelope(announced) == chosen


def test_only_unknown_envelopes_announced_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="envelopes"):
        choose_envelope(["v9"])
    assert ENVELOPES == (V2, V1)


# Any text a path, a model or a revision could hold, quotes, backslashes,
# control characters and non-ASCII included (lone surrogates cannot be UTF-8).
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@given(_TEXT, _TEXT, _TEXT, _TEXT, _TEXT)
def test_the_file_key_aad_written_by_hand_is_canonical_json(
    path: str, file_version: str, grant_id: str, model: str, revision: str
) -> None:
    binding = dataclasses.replace(BINDING, grant_id=grant_id, model=model, revision=revision)
    expected = FILE_KEY_LABEL + canonical_json(
        {
            "grant_id": grant_id,
            "model": model,
            "revision": revision,
            "path": path,
            "file_version": file_version,
        }
    )
    assert binding.file_key_aad(path, file_version) == expected
