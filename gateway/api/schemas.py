"""Request bodies. Responses are plain dicts built by the services."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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


class ExplainBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: str = Field(min_length=2, max_length=2)
    org_hq: str | None = Field(default=None, min_length=2, max_length=2)
    parent_hq: str | None = Field(default=None, min_length=2, max_length=2)
    ip_country: str | None = Field(default=None, min_length=2, max_length=2)
    eccn: str = Field(default="4E091", max_length=16)
    at: date | None = None


class ReloadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A pack name (shipped, or in WEIGHTGATE_POLICY_DIR); never a path, so an
    # HTTP caller cannot make the gateway read an arbitrary file.
    pack: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")


class CosignatureBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1)
    cosignature: str = Field(min_length=10, max_length=1000)


class ExemptionBody(BaseModel):
    """Mirrors ``weightgate exemptions propose``."""

    model_config = ConfigDict(extra="forbid")

    org: str = Field(min_length=1, max_length=64)
    kind: Literal["license", "uveu", "nveu"]
    reference: str = Field(min_length=1, max_length=200)
    countries: list[str] = Field(min_length=1, max_length=300)
    models: list[str] = Field(min_length=1, max_length=1000)
    until: date
    reason: str = Field(min_length=1, max_length=2000)
    conditions: str | None = Field(default=None, max_length=4000)
    valid_from: date | None = None


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class QuotaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grants_per_hour: int | None = Field(default=None, ge=0)
    bytes_per_day: int | None = Field(default=None, ge=0)


class OrgBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
