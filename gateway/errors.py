"""The one error root.

Every domain error carries a stable machine ``code``. Only the HTTP layer maps
errors to status codes and problem+json, and only the CLI maps them to a
message and an exit status; nothing else translates them.
"""

from __future__ import annotations

from typing import Any


class WeightgateError(Exception):
    """Base of every error weightgate raises on purpose."""

    code = "error"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInput(WeightgateError):
    """The caller sent something malformed; nothing was changed."""

    code = "invalid_input"


class Unauthenticated(WeightgateError):
    """No token, or one we cannot trust."""

    code = "unauthenticated"


class TokenExpired(Unauthenticated):
    """A token that was good and is now past its expiry: mint or fetch a new one."""

    code = "token_expired"


class Forbidden(WeightgateError):
    """Authenticated, but a role or the policy says no."""

    code = "forbidden"


class PolicyDenied(Forbidden):
    """The export policy denied the request; ``reasons`` say why."""

    code = "policy_denied"


class NotFound(WeightgateError):
    code = "not_found"


class NotYetCovered(WeightgateError):
    """An audit entry exists but no signed checkpoint covers it yet; ``retry_after`` says when."""

    code = "not_yet_covered"


class Conflict(WeightgateError):
    code = "conflict"


class Gone(WeightgateError):
    """A grant or URL that existed but has expired or been revoked."""

    code = "gone"


class QuotaExceeded(WeightgateError):
    """A per-organisation or per-subject quota is used up; ``retry_after`` says for how long."""

    code = "quota_exceeded"


class InsufficientSpace(WeightgateError):
    """The client's disk cannot hold what it is about to download."""

    code = "no_space"


class Unavailable(WeightgateError):
    """A dependency (database, audit log, storage, keystore) is down: fail closed."""

    code = "unavailable"


class IntegrityError(WeightgateError):
    """Ciphertext, a signature or a checksum did not verify.

    One opaque error for every decryption failure, so that no caller can learn
    which part of a forged input was wrong.
    """

    code = "integrity"
