"""The schema. One row type per thing the gateway remembers."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, screened with the name
    hq_country: Mapped[str] = mapped_column(String(2))
    parent_hq_country: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScreeningResult(Base):
    """An organisation's denied-party hits against one list, so a grant reads them, not screens.

    Written with every change to the organisation and after every list load;
    the grant path trusts it only for the list (SHA-256), threshold and matching rule in force.
    """

    __tablename__ = "screening_results"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    list_sha256: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[int] = mapped_column(Integer)
    # JSON {"matcher": version, "hits": [ScreeningHit.to_dict()]}; a bare list before versions
    hits: Mapped[str] = mapped_column(Text)
    screened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Model(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    eccn: Mapped[str] = mapped_column(String(16))
    training_ops: Mapped[str | None] = mapped_column(String(32))  # exact decimal text, no floats
    weights_published: Mapped[bool] = mapped_column(Boolean, default=False)
    classification_basis: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Revision(Base):
    __tablename__ = "revisions"

    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), primary_key=True)
    revision: Mapped[str] = mapped_column(String(128), primary_key=True)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelFile(Base):
    __tablename__ = "model_files"
    __table_args__ = (UniqueConstraint("model_id", "revision", "path"),)

    file_version: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(128))
    revision: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(String(512))
    plaintext_size: Mapped[int] = mapped_column(BigInteger)
    ciphertext_size: Mapped[int] = mapped_column(BigInteger)
    plaintext_sha256: Mapped[str] = mapped_column(String(64))
    header: Mapped[bytes] = mapped_column(LargeBinary)
    algorithm: Mapped[str] = mapped_column(String(80))
    object_key: Mapped[str] = mapped_column(String(256))
    object_version: Mapped[str] = mapped_column(String(256))
    kek_id: Mapped[str] = mapped_column(String(256))  # kms:<key ARN> needs more than 64
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)


class Grant(Base):
    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Who holds it is (issuer, subject): two trusted issuers may both have an "anna".
    issuer: Mapped[str | None] = mapped_column(String(512))  # NULL only for grants before 0007
    subject: Mapped[str] = mapped_column(String(256))
    org_id: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[str] = mapped_column(String(128))
    revision: Mapped[str] = mapped_column(String(128))
    paths: Mapped[str] = mapped_column(Text)  # canonical JSON list of the granted paths
    # Indexed for the console's recent grants, newest first.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    audit_index: Mapped[int] = mapped_column(BigInteger)
    exemption_id: Mapped[str | None] = mapped_column(String(32))  # the door it came through
    granted_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Quota(Base):
    """Limits an admin set for an organisation or a subject; NULL means no limit."""

    __tablename__ = "quotas"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)  # "org" or "subject"
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    grants_per_hour: Mapped[int | None] = mapped_column(Integer)
    bytes_per_day: Mapped[int | None] = mapped_column(BigInteger)


class Exemption(Base):
    """A license or validated end-user authorisation, with its two-person approval trail."""

    __tablename__ = "exemptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(200))
    countries: Mapped[str] = mapped_column(Text)  # JSON list of ISO codes
    models: Mapped[str | None] = mapped_column(Text)  # JSON list, or NULL for every model
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)  # inclusive
    reason: Mapped[str] = mapped_column(Text)
    conditions: Mapped[str | None] = mapped_column(Text)  # e.g. the license's provisos
    proposed_by: Mapped[str] = mapped_column(String(256))
    proposed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    approvals: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of approving subjects
    status: Mapped[str] = mapped_column(String(16))  # pending, approved, rejected, revoked
    decided_by: Mapped[str | None] = mapped_column(String(256))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_reason: Mapped[str | None] = mapped_column(Text)


class AuditEntry(Base):
    """One log entry: the exact canonical bytes that were hashed, and the hash."""

    __tablename__ = "audit_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    # Columns copied out of the entry for filtering only; verification never reads them.
    event: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(256), index=True)
    org_id: Mapped[str | None] = mapped_column(String(64))
    model_id: Mapped[str | None] = mapped_column(String(128))
    decision: Mapped[str | None] = mapped_column(String(8))
    country: Mapped[str | None] = mapped_column(String(2))  # the requester's location
    tier: Mapped[int | None] = mapped_column(Integer)  # the decision's effective tier
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class MerkleNode(Base):
    """The hash of a perfect subtree above the leaves (level >= 1), stored as it completes.

    With these, an inclusion or consistency proof is a handful of lookups at
    any tree size, instead of rehashing the log.
    """

    __tablename__ = "merkle_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class TreeState(Base):
    """The single row that serialises appends: size and root after the last batch."""

    __tablename__ = "tree_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    # The compact range (right-edge subtree hashes), so appends are O(log n).
    frontier: Mapped[bytes] = mapped_column(LargeBinary)


class SeenToken(Base):
    """A DPoP proof or one-time token already used; kept until it would expire anyway."""

    __tablename__ = "seen_tokens"

    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class SignedCheckpoint(Base):
    """A checkpoint the publisher signed, with any witness cosignatures appended to its note.

    The newest row is what a new tree head must extend: one lookup, whatever
    the log's age.
    """

    __tablename__ = "checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PolicyInForce(Base):
    """The single row naming the pack every process enforces, with the pack's own text.

    Keeping the text (not just a name) means every replica enforces the same
    bytes, whatever pack files its own disk holds.
    """

    __tablename__ = "policy_in_force"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[str] = mapped_column(String(512))  # the name or path it was loaded from
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[bytes] = mapped_column(LargeBinary)
    switched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConsoleSession(Base):
    """A signed-in console user: who their token said they were, until the token expired.

    Only the SHA-256 of the cookie's secret is kept, so a copy of the
    database opens no one's session.
    """

    __tablename__ = "console_sessions"

    secret_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(256))
    org_id: Mapped[str] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(2))
    roles: Mapped[str] = mapped_column(Text)  # JSON list
    issuer: Mapped[str] = mapped_column(String(512))
    token_id: Mapped[str | None] = mapped_column(String(256))
    csrf: Mapped[str] = mapped_column(String(64))  # the token every state-changing form carries
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ConsoleSignIn(Base):
    """An OIDC sign-in under way: its PKCE verifier and nonce, kept until the callback."""

    __tablename__ = "console_sign_ins"

    state_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(512))
    code_verifier: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str] = mapped_column(String(64))
    return_to: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
