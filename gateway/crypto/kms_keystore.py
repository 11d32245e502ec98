"""AWS KMS as the keystore: data keys wrapped by a KMS key, bound to their file by its context.

``WEIGHTGATE_KEYSTORE=kms:<key ARN, key id or alias>`` names the key new wraps
use. Each data key is ``Encrypt``-ed under it with the file's identity (model,
revision, path, file version) as the encryption context, which KMS binds into
the ciphertext: a wrapped key copied onto another file's row is refused by
KMS, as the local keystore's associated data refuses it. The context also
reaches CloudTrail, so every ``Decrypt`` is logged by AWS with the file it
was for.

The KEK id recorded beside a wrapped key is ``kms:<key ARN>``, as KMS returns
it, and ``Decrypt`` names that key, so a row relabelled with another key is
refused too. KMS rotates a key's material itself (automatic or on-demand
rotation keeps the ARN, and old ciphertexts stay decryptable), so a KMS KEK
has no local versions: rotating onto a *new* key means pointing the alias, or
``WEIGHTGATE_KEYSTORE``, at it and running ``weightgate keys rotate``.

This module is the boundary for botocore's KMS errors: a refused ciphertext
or context becomes the one opaque ``IntegrityError``; anything that says KMS
cannot answer now (unreachable, throttled, access denied, key disabled)
becomes ``Unavailable`` (503, nothing issued). The client is ``Any`` because
boto3 builds its methods at run time.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from gateway import aws
from gateway.errors import IntegrityError, InvalidInput, NotFound, Unavailable

SCHEME = "kms:"
# Version byte of the stored blob: 0x01 || KMS CiphertextBlob.
_FORMAT_V1 = b"\x01"
# KMS ciphertexts are at most 6 KiB; anything longer in a row is not one.
_MAX_CIPHERTEXT = 6144
# Every call is on a grant's path (Decrypt) or an operator's (Encrypt): KMS
# answers in milliseconds, so a few seconds without a byte is an outage. Two
# attempts in all, as for S3 requests: a hung KMS costs a grant about 2 x 3 s.
REQUEST_CONFIG = Config(
    connect_timeout=2,
    read_timeout=3,
    retries={"total_max_attempts": 2, "mode": "standard"},
)
# A key ARN, key id (UUID or multi-Region mrk-), or alias, as KMS accepts them.
_KEY_REFERENCE = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[A-Za-z0-9-]{1,64}|alias/[A-Za-z0-9/_-]{1,250})"
    r"|alias/[A-Za-z0-9/_-]{1,250}"
    r"|(mrk-)?[0-9a-f-]{32,36})$"
)
_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]{1,64}$")
# Answers that mean the ciphertext, its context or its key do not match: no oracle, one error.
_REFUSED = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
_CONTEXT_MARK = {"weightgate": "dek.v1"}


def parse_key_reference(spec: str) -> str:
    """The key reference in ``kms:<ARN | key id | alias>``; InvalidInput if it is not one."""
    reference = spec.removeprefix(SCHEME)
    if not spec.startswith(SCHEME) or not _KEY_REFERENCE.fullmatch(reference):
        raise InvalidInput(
            f"WEIGHTGATE_KEYSTORE {spec!r}: expected kms:<key ARN>, kms:<key id> or kms:alias/NAME"
        )
    return reference


def make_client(*, endpoint_url: str | None, session: Any = None) -> Any:
    """A KMS client with bounded timeouts; credentials and region from the usual AWS chain."""
    return aws.make_client(
        "kms",
        endpoint_url=endpoint_url,
        endpoint_setting="WEIGHTGATE_KMS_ENDPOINT_URL",
        config=REQUEST_CONFIG,
        session=session,
    )


class KmsKeystore:
    """Wraps under one KMS key (symmetric, ENCRYPT_DECRYPT); unwraps under the key a row names."""

    def __init__(self, key: str, *, client: Any) -> None:
        self._key = parse_key_reference(f"{SCHEME}{key}")
        self._client = client

    def wrap(self, data_key: bytes, context: dict[str, str]) -> tuple[str, bytes]:
        answer = self._call(
            "Encrypt",
            self._key,
            lambda: self._client.encrypt(
                KeyId=self._key, Plaintext=data_key, EncryptionContext=_context(context)
            ),
        )
        arn = str(answer["KeyId"])
        return SCHEME + arn, _FORMAT_V1 + bytes(answer["CiphertextBlob"])

    def unwrap(self, kek_id: str, wrapped: bytes, context: dict[str, str]) -> bytes:
        arn = kek_id.removeprefix(SCHEME)
        if (
            not kek_id.startswith(SCHEME)
            or not _KEY_ARN.fullmatch(arn)
            or wrapped[:1] != _FORMAT_V1
            or not 1 < len(wrapped) <= 1 + _MAX_CIPHERTEXT
        ):
            raise IntegrityError("unwrap failed")
        answer = self._call(
            "Decrypt",
            arn,
            lambda: self._client.decrypt(
                KeyId=arn, CiphertextBlob=wrapped[1:], EncryptionContext=_context(context)
            ),
        )
        return bytes(answer["Plaintext"])

    def check(self) -> None:
        self.current_id()

    def current_id(self) -> str:
        metadata = self._call(
            "DescribeKey", self._key, lambda: self._client.describe_key(KeyId=self._key)
        )["KeyMetadata"]
        if metadata.get("KeyState") != "Enabled" or not metadata.get("Enabled", False):
            raise Unavailable(f"KMS key {metadata['Arn']} is {metadata.get('KeyState')}")
        # Only a symmetric key wraps with an encryption context (and is always ENCRYPT_DECRYPT).
        if metadata.get("KeySpec") != "SYMMETRIC_DEFAULT":
            raise Unavailable(f"KMS key {metadata['Arn']} is not a symmetric encryption key")
        return SCHEME + str(metadata["Arn"])

    def advance(self) -> str:
        # KMS makes new key material itself; the current key (which an alias
        # may have been moved to) is what a rotation re-wraps onto.
        return self.current_id()

    def known_ids(self) -> list[str]:
        # KMS can list every key of the account, most of them not weightgate's.
        return [self.current_id()]

    def holds(self, kek_id: str) -> bool:
        arn = kek_id.removeprefix(SCHEME)
        if not kek_id.startswith(SCHEME) or not _KEY_ARN.fullmatch(arn):
            return False
        try:
            self._call(
                "DescribeKey", arn, lambda: self._client.describe_key(KeyId=arn), missing=True
            )
        except NotFound:
            return False
        return True

    def retire(self, kek_id: str) -> None:
        arn = kek_id.removeprefix(SCHEME)
        if not kek_id.startswith(SCHEME) or not _KEY_ARN.fullmatch(arn):
            raise InvalidInput(f"{kek_id!r} is not a KMS key id (kms:<key ARN>)")
        region, key_id = arn.split(":")[3], arn.rsplit("/", 1)[1]
        if region != self._client.meta.region_name:
            raise InvalidInput(f"{kek_id} is in {region}; retire it with a client in that region")
        # By key id: DisableKey acts only in the caller's own account and region
        # anyway (and moto's server fails on an ARN here). Disabled, not
        # scheduled for deletion: EnableKey undoes it, deletion cannot be undone.
        self._call("DisableKey", arn, lambda: self._client.disable_key(KeyId=key_id), missing=True)

    def _call(self, what: str, key: str, call: Any, *, missing: bool = False) -> dict[str, Any]:
        """Call KMS about ``key``; with ``missing``, a key KMS does not have is NotFound.

        Without, it is Unavailable: the current key gone means nothing can be
        wrapped or released (503), not that the request named something absent.
        """
        try:
            answer: dict[str, Any] = call()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _REFUSED:
                raise IntegrityError("unwrap failed") from None
            if missing and code == "NotFoundException":
                raise NotFound(f"KMS has no key {key}") from None
            # Access denied, a disabled or missing key, throttling, KMS errors:
            # nothing can be released now, and the operator needs the code.
            raise Unavailable(f"KMS {what} failed for {key}: {code or 'error'}") from None
        except BotoCoreError as exc:  # unreachable, timed out, no credentials
            raise Unavailable(f"KMS {what} failed for {key}: {type(exc).__name__}") from None
        return answer


def _context(context: dict[str, str]) -> dict[str, str]:
    # Marked as weightgate's, so a ciphertext made for another use of the same
    # key does not unwrap here, and CloudTrail entries say whose they are.
    return {**context, **_CONTEXT_MARK}
