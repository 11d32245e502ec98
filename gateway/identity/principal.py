"""The verified identity a request is decided on."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ML = "ml"
    SECURITY = "security"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    subject: str
    org: str
    country: str  # ISO 3166-1 alpha-2, validated
    roles: frozenset[Role]
    token_id: str | None
    issuer: str

    def has_any(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))
