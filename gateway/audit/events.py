"""The audit log's event types, each defined once, and the shape every entry shares.

One registry (``EVENTS``) says, for each event type, what it means, which
fields it carries besides the common ones, how it maps to OCSF and whether
webhooks hear of it. The log refuses an event that is not in it or carries
fields it does not declare; the OCSF export and the webhook notifier read it;
``docs/AUDIT.md``'s event table is checked against it by a test. So the
log, its exports and its documentation cannot drift apart.

Secrets never enter the log: a token id is recorded only as a keyed hash, so
the log can be searched for a token without the log revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.identity.principal import Principal

# Fields every entry has (``index`` and ``origin`` are set by the sequencer).
COMMON_FIELDS = frozenset({"event", "time", "request_id", "client", "actor", "index", "origin"})


@dataclass(frozen=True)
class OcsfClass:
    uid: int
    name: str
    category_uid: int


WEB_RESOURCE_ACCESS = OcsfClass(6004, "Web Resource Access Activity", 6)
FILE_HOSTING = OcsfClass(6006, "File Hosting Activity", 6)
AUTHENTICATION = OcsfClass(3002, "Authentication", 3)
API_ACTIVITY = OcsfClass(6003, "API Activity", 6)


@dataclass(frozen=True)
class Ocsf:
    """Where an event lands in OCSF 1.3: class, activity, and whether it is a failure."""

    cls: OcsfClass
    activity_id: int
    activity: str
    failure: bool = False

    @property
    def status(self) -> str:
        return "Failure" if self.failure else "Success"


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    ocsf: Ocsf
    # Fields beyond COMMON_FIELDS: those always present, then those that may be.
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    # Whether webhook receivers are told of it (decisions admins should see at once).
    notify: bool = False

    def check(self, event: Mapping[str, Any]) -> None:
        """Raise UnknownEvent unless ``event`` carries exactly what this type declares."""
        extra = event.keys() - COMMON_FIELDS - self.required - self.optional
        missing = (self.required | (COMMON_FIELDS - {"index", "origin"})) - event.keys()
        if extra or missing:
            raise UnknownEvent(
                f"a {self.name} entry must not carry {sorted(extra)} and must carry "
                f"{sorted(missing)}"
            )


class UnknownEvent(ValueError):
    """An entry the registry does not describe: a programming error, refused before the log."""


def _api(activity_id: int, activity: str) -> Ocsf:
    return Ocsf(API_ACTIVITY, activity_id, activity)


_EVENT_LIST = (
    EventType(
        "grant.allow",
        "A grant was issued: the decision, the grant id, its expiry and its files.",
        Ocsf(WEB_RESOURCE_ACCESS, 1, "Access Grant"),
        required=frozenset({"model", "revision", "decision", "grant_id", "expires_at", "files"}),
    ),
    EventType(
        "grant.deny",
        "The policy denied a request: the decision with its reasons and citations.",
        Ocsf(WEB_RESOURCE_ACCESS, 2, "Access Deny", failure=True),
        required=frozenset({"model", "decision"}),
        optional=frozenset({"revision"}),
        notify=True,
    ),
    EventType(
        "grant.quota",
        "A request the policy allowed was refused for a used-up quota (429).",
        Ocsf(WEB_RESOURCE_ACCESS, 2, "Access Deny", failure=True),
        required=frozenset({"model", "quota"}),
        notify=True,
    ),
    EventType(
        "grant.revoke",
        "A grant was revoked by its owner or an admin; its URLs answer 410.",
        Ocsf(WEB_RESOURCE_ACCESS, 3, "Access Revoke"),
        required=frozenset({"grant_id", "model", "revision"}),
    ),
    EventType(
        "download.redirect",
        "A file URL of a grant was redirected to short-lived storage.",
        Ocsf(FILE_HOSTING, 2, "Download"),
        required=frozenset({"grant_id", "model", "revision", "path"}),
    ),
    EventType(
        "storage.gc",
        "Ciphertext no published file names, about to be deleted by `weightgate gc --delete`.",
        Ocsf(FILE_HOSTING, 4, "Delete"),
        required=frozenset({"grace_seconds", "bytes", "blobs"}),
    ),
    EventType(
        "auth.reject",
        "A token was refused (401): the first of its kind per address and reason a minute.",
        Ocsf(AUTHENTICATION, 1, "Logon", failure=True),
        required=frozenset({"reason"}),
        optional=frozenset({"method", "path", "token"}),
    ),
    EventType(
        "auth.reject.summary",
        "How many more refusals of one address and reason a minute held, first and last.",
        Ocsf(AUTHENTICATION, 1, "Logon", failure=True),
        required=frozenset({"reason", "refused", "first", "last"}),
    ),
    EventType(
        "org.add",
        "An organisation was registered, with its headquarters and parent's.",
        _api(1, "Create"),
        required=frozenset({"org"}),
    ),
    EventType(
        "org.update",
        "An organisation was changed: its state before and after.",
        _api(3, "Update"),
        required=frozenset({"org"}),
    ),
    EventType(
        "model.publish",
        "A model revision was encrypted, stored and registered with its classification.",
        _api(1, "Create"),
        required=frozenset({"model", "revision", "classification", "files"}),
        optional=frozenset({"training_ops"}),
    ),
    EventType(
        "keys.rotate",
        "A KEK rotation began: the target KEK, whether it is a new version, the data keys to move.",
        _api(3, "Update"),
        required=frozenset({"kek", "pending"}),
    ),
    EventType(
        "keys.rewrap",
        "One batch of data keys re-wrapped under the target KEK, committed with the batch.",
        _api(3, "Update"),
        required=frozenset({"kek", "data_keys"}),
    ),
    EventType(
        "keys.retire",
        "A KEK no data key uses any more was retired.",
        _api(4, "Delete"),
        required=frozenset({"kek"}),
    ),
    EventType(
        "screening.load",
        "A screening list was loaded: its SHA-256, parties and threshold, and the one before.",
        _api(3, "Update"),
        required=frozenset({"screening_list"}),
        optional=frozenset({"previous"}),
    ),
    EventType(
        "screening.changed",
        "After a list load, an organisation's screening hits changed: those new and those cleared.",
        _api(3, "Update"),
        required=frozenset({"org", "screening_list", "new_hits", "cleared_hits"}),
        notify=True,
    ),
    EventType(
        "policy.load",
        "A policy pack was put in force (the one before it, if any).",
        _api(3, "Update"),
        required=frozenset({"pack"}),
        optional=frozenset({"previous"}),
    ),
    EventType(
        "quota.set",
        "An admin set an organisation's or a subject's quota.",
        _api(3, "Update"),
        required=frozenset({"quota"}),
    ),
    EventType(
        "exemption.propose",
        "An admin proposed an exemption; it waits for approval.",
        _api(1, "Create"),
        required=frozenset({"exemption"}),
        notify=True,
    ),
    EventType(
        "exemption.approve",
        "An admin approved an exemption: its state after, approved once enough have.",
        _api(3, "Update"),
        required=frozenset({"exemption"}),
        notify=True,
    ),
    EventType(
        "exemption.reject",
        "An admin rejected a pending exemption, with a reason.",
        _api(3, "Update"),
        required=frozenset({"exemption"}),
        notify=True,
    ),
    EventType(
        "exemption.revoke",
        "An admin revoked an exemption; grants resting on it stop at once.",
        _api(4, "Delete"),
        required=frozenset({"exemption"}),
        notify=True,
    ),
)
EVENTS: Mapping[str, EventType] = {event.name: event for event in _EVENT_LIST}


def event_type(name: object) -> EventType:
    """The registered type called ``name``; UnknownEvent for any other."""
    found = EVENTS.get(name) if isinstance(name, str) else None
    if found is None:
        raise UnknownEvent(f"{name!r} is not a registered audit event type")
    return found


def check_event(event: Mapping[str, Any]) -> EventType:
    """The event's type, once its fields are those the type declares."""
    kind = event_type(event.get("event"))
    kind.check(event)
    return kind


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
    check_event(entry)
    return entry
