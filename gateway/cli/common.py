"""Helpers shared by the command modules."""

from __future__ import annotations

import getpass
import uuid
from datetime import date
from typing import TYPE_CHECKING

from rich.text import Text

from gateway.audit.events import RequestContext
from gateway.config import Settings
from gateway.errors import InvalidInput

if TYPE_CHECKING:
    from gateway.bootstrap import Services


def operator_services() -> Services:
    """Operator commands run on the gateway host, against its configuration directly.

    They open existing state and never create it: a mistyped WEIGHTGATE_HOME is
    refused, naming the path, rather than becoming an empty gateway.
    """
    # Imported here so client commands (fetch, decrypt) start without the
    # database, storage and web stacks.
    from gateway.bootstrap import build_services, require_state

    settings = Settings()
    require_state(settings)
    return build_services(settings)


def operator_context() -> RequestContext:
    return RequestContext(request_id=uuid.uuid4().hex, client_address=f"cli:{getpass.getuser()}")


def parse_day(value: str | None, *, what: str = "--at") -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a date as YYYY-MM-DD, not {value!r}") from None


def literal(value: object) -> Text:
    """Data shown as written, never parsed as rich markup: a token's subject like
    ``[/]`` would otherwise crash the table, and ``[red]admin`` would restyle it."""
    return Text(str(value))
