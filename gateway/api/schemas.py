"""Request bodies, response models and the problem+json shape: the API's one definition of each."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from gateway.exemptions import Proposal
from gateway.policy.exemptions import ExemptionKind
from gateway.policy.pack import Eccn

# The largest integer the database stores (a signed 64-bit column): anything
# larger is malformed input (422), not a database failure.
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def _text_matching(pattern: str, what: str) -> Callable[[object], object]:
    shape = re.compile(pattern)

    def check(value: object) -> object:
        if isinstance(value, date) or (isinstance(value, str) and shape.fullmatch(value)):
            return value
        raise ValueError(f"must be {what}")

    return check


# Dates and times are read only from ISO 8601 text, as documented: left to
# itself, pydantic would also take a number (even "0.5") as a Unix time.
DateParam = Annotated[
    date, BeforeValidator(_text_matching(r"\d{4}-\d{2}-\d{2}", "an ISO 8601 date, YYYY-MM-DD"))
]
DateTimeParam = Annotated[
    datetime,
    BeforeValidator(
        _text_matching(
            r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})?",
            "an ISO 8601 date and time",
        )
    ),
]


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    revision: str | None = Field(default=None, max_length=64)
    files: list[str] | None = Field(default=None, max_length=10_000)
    include: list[str] = Field(default_factory=list, max_length=100)
    exclude: list[str] = Field(default_factory=list, max_length=100)
    recipient_key: str = Field(min_length=1, max_length=4096)
    # "x25519" (default) or "mlkem768-x25519", the post-quantum hybrid.
    recipient_kem: Literal["x25519", "mlkem768-x25519"] = "x25519"
    # The key-release envelope versions the client can open, in its order of
    # preference; the gateway uses the first. Absent: "v1", as before v2 existed.
    envelopes: list[Literal["v2", "v1"]] | None = Field(default=None, min_length=1, max_length=2)


class ExplainBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"country": "DE", "parent_hq": "CN"}, {"country": "IN"}]},
    )

    country: str = Field(min_length=2, max_length=2)
    org_hq: str | None = Field(default=None, min_length=2, max_length=2)
    parent_hq: str | None = Field(default=None, min_length=2, max_length=2)
    ip_country: str | None = Field(default=None, min_length=2, max_length=2)
    eccn: str = Field(default="4E091", max_length=16)
    at: DateParam | None = None


class ReloadBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}]})

    # A pack name (shipped, or in WEIGHTGATE_POLICY_DIR); never a path, so an
    # HTTP caller cannot make the gateway read an arbitrary file.
    pack: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")


class CosignatureBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1, le=INT64_MAX, strict=True)
    cosignature: str = Field(min_length=10, max_length=1000)


class ExemptionBody(BaseModel):
    """Mirrors ``weightgate exemptions propose``."""

    model_config = ConfigDict(extra="forbid")

    org: str = Field(min_length=1, max_length=64)
    kind: Literal["license", "uveu", "nveu"]
    reference: str = Field(min_length=1, max_length=200)
    countries: list[str] = Field(min_length=1, max_length=300)
    models: list[str] = Field(min_length=1, max_length=1000)
    until: DateParam
    reason: str = Field(min_length=1, max_length=2000)
    conditions: str | None = Field(default=None, max_length=4000)
    valid_from: DateParam | None = None

    def proposal(self) -> Proposal:
        return Proposal(
            self.org,
            self.kind,
            self.reference,
            self.countries,
            self.models,
            self.until,
            self.reason,
            conditions=self.conditions,
            valid_from=self.valid_from,
        )


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class QuotaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: ``false`` is not a limit of 0 (lax pydantic would read it as one).
    grants_per_hour: int | None = Field(default=None, ge=0, le=INT32_MAX, strict=True)
    bytes_per_day: int | None = Field(default=None, ge=0, le=INT64_MAX, strict=True)


class OrgBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"id": "panda-de", "name": "Panda Labs Berlin", "hq": "DE", "parent_hq": "CN"}
            ]
        },
    )

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    hq: str = Field(min_length=2, max_length=2)
    parent_hq: str | None = Field(default=None, min_length=2, max_length=2)
    aliases: list[str] = Field(default_factory=list, max_length=50)


class OrgChange(BaseModel):
    """Only the fields given change; ``parent_hq: null`` removes the parent."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    hq: str | None = Field(default=None, min_length=2, max_length=2)
    parent_hq: str | None = Field(default=None, min_length=2, max_length=2)
    aliases: list[str] | None = Field(default=None, max_length=50)


# Responses. Each is the one definition of an answer: FastAPI validates what a
# route returns against it, serialises it, and documents it in the OpenAPI
# schema. The services still build plain dicts; these models check them.


class _Response(BaseModel):
    # A service that adds a field without adding it here fails loudly (the
    # response is refused as a 500 in every test that reaches it) instead of
    # the field silently disappearing, so the document cannot drift from the code.
    model_config = ConfigDict(extra="forbid")


# Timestamps and days are passed through as the services format them
# (``datetime.isoformat()``), so the bytes a client sees do not change.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Day = Annotated[str, Field(json_schema_extra={"format": "date"})]
Base64 = Annotated[str, Field(json_schema_extra={"contentEncoding": "base64"})]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Health(_Response):
    status: Literal["ok"]


class Readiness(_Response):
    """Each dependency's state; any dependency down is a 503 problem instead."""

    database: str
    storage: str
    keys: str
    audit: str = Field(description="``ok`` once appends to the audit log commit")
    checkpoints: str = Field(
        description="``publishing`` on the replica that signs checkpoints, else ``ok``"
    )


# A TypedDict, not a model: the same reasons travel in a 403 problem body,
# which the error handlers build as a plain dict (see ``Problem``).
@with_config(ConfigDict(extra="forbid"))
class Reason(TypedDict):
    """One rule that bore on a decision, with the regulation it comes from."""

    code: str
    message: str
    citation: str


class DecisionInput(_Response):
    """The tier a country put the request in, and the country group that says so."""

    country: str
    tier: int = Field(ge=1, le=3)
    group: str | None


class ScreeningHit(_Response):
    """A denied-party list entry the organisation's name or an alias matched."""

    entry_id: str
    source: str
    listed_name: str
    screened_name: str
    score: int


class Decision(_Response):
    """The one decision shape of the CLI, the HTTP API and the audit log (``Decision.to_dict``)."""

    effect: Literal["allow", "deny"]
    tier: int = Field(ge=1, le=3)
    policy: str
    policy_version: str
    policy_sha256: str
    eccn: Eccn
    classification_basis: str | None
    on: Day = Field(description="the day the policy was applied as of")
    inputs: dict[str, DecisionInput] = Field(
        description="by input: ``location``, ``org_hq``, ``parent_hq``, ``ip_country``"
    )
    reasons: list[Reason]
    screening: list[ScreeningHit]
    exemption: str | None = Field(description="the exemption that allowed it, if one did")


class GrantFile(_Response):
    """One granted file: where to fetch its ciphertext and the key to decrypt it, sealed."""

    path: str
    size: int = Field(ge=0, description="plaintext bytes")
    ciphertext_size: int = Field(ge=0)
    sha256: Sha256Hex = Field(description="of the plaintext")
    algorithm: str
    file_version: str
    header: Base64
    wrapped_key: Base64 = Field(
        description="the file key: v1, HPKE-sealed to the recipient key; "
        "v2, AES-256-GCM-wrapped under the grant key"
    )
    url: str = Field(
        json_schema_extra={"format": "uri"},
        description="a capability URL: no token needed; 307 to storage while the grant holds",
    )


class GrantView(_Response):
    """A grant as issued: the decision, and every file's URL and sealed key."""

    id: str
    subject: str
    model: str
    revision: str
    eccn: Eccn
    expires_at: Timestamp
    audit_index: int = Field(ge=0, description="the audit entry that records the grant")
    key_wrapping: str
    envelope: Literal["v1", "v2"] = Field(description="how the file keys are carried (FORMAT.md)")
    grant_key: Base64 | None = Field(
        description="v2: the grant key, HPKE-sealed to the recipient key; v1: null"
    )
    decision: Decision
    files: list[GrantFile]


class GrantStatus(_Response):
    """A grant as it stands now; no keys, no URLs."""

    id: str
    subject: str
    model: str
    revision: str
    files: list[str]
    expires_at: Timestamp
    state: Literal["active", "expired", "revoked"]
    audit_index: int = Field(ge=0)


class ModelInfo(_Response):
    id: str
    eccn: Eccn
    classification_basis: str
    training_ops: str | None = Field(description="training compute as exact decimal text")
    revisions: list[str]


class ModelList(_Response):
    models: list[ModelInfo]


class PolicySummary(_Response):
    """The policy pack in force."""

    name: str
    version: str
    sha256: Sha256Hex


class OrgView(_Response):
    id: str
    name: str
    hq: str
    parent_hq: str | None
    aliases: list[str]


class OrgList(_Response):
    orgs: list[OrgView]


class ExemptionView(_Response):
    id: str
    org: str
    kind: ExemptionKind
    reference: str
    countries: list[str]
    models: list[str] = Field(description='model ids, or ``["*"]`` for every model')
    valid_from: Day
    until: Day
    reason: str
    conditions: str | None
    proposed_by: str
    proposed_at: Timestamp
    approvals: list[str]
    approvals_required: int = Field(ge=1)
    status: Literal["pending", "approved", "rejected", "revoked", "expired"]
    decided_by: str | None
    decision_reason: str | None


class ExemptionList(_Response):
    exemptions: list[ExemptionView]


class QuotaView(_Response):
    """The limits now in force for one organisation or subject (null: no limit)."""

    scope: Literal["org", "subject"]
    key: str
    grants_per_hour: int | None
    bytes_per_day: int | None


# Audit entries are free-form: each event type has its own fields, and a new
# one must not be rejected here. Only what every entry carries is documented.
AuditEntry = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "description": "An audit entry as stored (canonical JSON), with its leaf hash.",
            "required": ["index", "leaf_hash", "event", "time"],
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "leaf_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "event": {"type": "string", "examples": ["grant.allow"]},
                "time": {"type": "string", "format": "date-time"},
            },
            "additionalProperties": True,
        }
    ),
]


class AuditEntries(_Response):
    entries: list[AuditEntry]
    next_after: int | None = Field(
        description="the ``after`` of the next page, or null on the last page"
    )


class InclusionProof(_Response):
    """RFC 9162 inclusion proof of one entry in the tree a signed checkpoint commits to."""

    index: int = Field(ge=0)
    size: int = Field(ge=1)
    leaf_hash: Sha256Hex
    proof: list[Base64]
    checkpoint: str = Field(description="the signed checkpoint note (c2sp.org/tlog-checkpoint)")


class ConsistencyProof(_Response):
    """RFC 9162 consistency proof between two tree sizes."""

    start: int = Field(alias="from", ge=0)
    end: int = Field(alias="to", ge=0)
    proof: list[Base64]


class CosignedCheckpoint(_Response):
    """The checkpoint of ``size`` as now stored, with the accepted cosignature."""

    size: int = Field(ge=1)
    checkpoint: str


# Errors: RFC 9457 problem details. The handlers in ``problems`` build their
# bodies with this type, and the OpenAPI schema documents it, so both say the
# same thing. Members beyond the first six appear only where they apply.
PROBLEM_MEDIA_TYPE = "application/problem+json"


@with_config(ConfigDict(extra="forbid"))
class ValidationIssue(TypedDict):
    """One malformed part of a request: where (body, query, path) and what is wrong."""

    loc: list[str]
    msg: str


@with_config(ConfigDict(extra="forbid"))
class Problem(TypedDict):
    """RFC 9457 problem details; ``code`` is the stable, machine-readable part."""

    type: Literal["about:blank"]
    title: str
    status: Annotated[int, Field(ge=400, le=599)]
    detail: str
    instance: Annotated[str, Field(description="the request path")]
    code: Annotated[
        str,
        Field(
            examples=["policy_denied", "not_found", "gone", "quota_exceeded", "unavailable"],
            description="the error's stable code; ``weightgate`` maps it to an exit status",
        ),
    ]
    reasons: NotRequired[
        Annotated[list[Reason], Field(description="why the export policy denied (403)")]
    ]
    tier: NotRequired[Annotated[int, Field(ge=1, le=3, description="the requester's tier (403)")]]
    policy: NotRequired[Annotated[str, Field(description="the policy pack that decided (403)")]]
    audit_index: NotRequired[
        Annotated[int, Field(ge=0, description="the audit entry recording the denial (403)")]
    ]
    state: NotRequired[
        Annotated[Literal["expired", "revoked"], Field(description="why a grant is gone (410)")]
    ]
    retry_after: NotRequired[
        Annotated[int, Field(ge=0, description="seconds to wait, as in ``Retry-After``")]
    ]
    errors: NotRequired[
        Annotated[list[ValidationIssue], Field(description="what is malformed (422)")]
    ]
    failed: NotRequired[
        Annotated[
            dict[str, str],
            Field(description="each component that is down, and why (503 from ``/readyz``)"),
        ]
    ]


class ListedFile(_Response):
    """One file of a revision as the catalog lists it before any grant.

    No SHA-256: the listing is open to any authenticated caller, including
    one the policy denies, and a hash would let them confirm a leaked copy.
    """

    path: str
    size: int = Field(ge=0, description="plaintext bytes, what the file takes on disk")
    ciphertext_size: int = Field(ge=0, description="bytes in storage, what a download moves")


class RevisionFiles(_Response):
    """The files of one published revision, ordered by path: what a grant of it can cover."""

    model: str
    revision: str
    files: list[ListedFile]
