"""The shape of audit events. Every entry names who, from where, what, and the outcome.

Secrets never enter the log: a token id is recorded only as a keyed hash, so
the log can be searched for a token without the log revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.identity.principal import Principal


@dataclass(frozen=True)
class RequestContext:
    """Facts about the HTTP request (or CLI invocation) an event comes from."""

    request_id: str
    client_address: str | None


def keyed_hash(key: bytes, secret: str) -> str:
    return "hmac-sha256:" + hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def build_event(
    event: str,
    *,
    time: datetime,
    context: RequestContext,
    principal: Principal | None = None,
    actor: dict[str, str | None] | None = None,
    hash_key: bytes | None = None,
    **fields: Any,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "event": event,
        "time": time.isoformat(),
        "request_id": context.request_id,
        "client": {"address": context.client_address},
        "actor": actor or {"subject": None, "org": None},
    }
    if principal is not None:
        entry["actor"] = {
            "subject": principal.subject,
            "org": principal.org,
            "issuer": principal.issuer,
            "country": principal.country,
        }
        if principal.token_id is not None and hash_key is not None:
            entry["actor"]["token"] = keyed_hash(hash_key, principal.token_id)
    entry.update({key: value for key, value in fields.items() if value is not None})
    return entry
