"""Helpers shared by the command modules."""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.audit.events import RequestContext
from gateway.config import Settings
from gateway.errors import InvalidInput

if TYPE_CHECKING:
    from gateway.bootstrap import Services

# The exit status of a refusal, whether an error (no token, no role, a denied
# grant) or the answer `policy explain` gives; main.EXIT_CODES lists them all.
DENIED = 3


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


def api_call(method: str, path: str, **kwargs: Any) -> Any:
    """One call to the gateway's API as WEIGHTGATE_TOKEN, at WEIGHTGATE_URL.

    Admin commands go through the API rather than the database so that who did
    what comes from a verified token and lands in the audit log as that person.
    """
    from gateway.client.gateway_api import GatewayClient
    from gateway.config import ClientSettings
    from gateway.identity.dpop import load_proof_key

    settings = ClientSettings()
    dpop_key = load_proof_key(settings.dpop_key) if settings.dpop_key else None
    with GatewayClient(settings.url, settings.token, dpop_key=dpop_key) as client:
        return client.call(method, path, **kwargs)


def path_segment(value: str, *, what: str) -> str:
    """An identifier placed in a URL path: quoted, so ``../`` or ``?`` cannot change the route."""
    if not value or len(value) > 200:
        raise InvalidInput(f"{what} must be 1 to 200 characters")
    return quote(value, safe="")


# Wider than any table the CLI prints: bounded inputs (names of 200 characters,
# 50 aliases) keep every row well under it.
_UNBOUNDED_WIDTH = 1 << 20


def stdout_console() -> Console:
    """The console for results: on a terminal, fitted to it; piped or redirected, never
    cut, so an id copied from a file is the whole id (no ``26d83…``)."""
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=_UNBOUNDED_WIDTH)
    return console


class ListFormat(StrEnum):
    """How a list command prints: a table for people, one JSON document for programs."""

    TABLE = "table"
    JSON = "json"


FormatOption = Annotated[
    ListFormat,
    typer.Option(
        "--format",
        help="table (for people) or json (one JSON document on stdout, for programs).",
        case_sensitive=False,
    ),
]
"""The ``--format table|json`` option every list command takes; reuse it as
``output: FormatOption = ListFormat.TABLE`` and finish with :func:`print_listing`."""


def print_listing(output: ListFormat, document: Mapping[str, Any], table: Table | str) -> None:
    """Print ``document`` as JSON, or ``table`` (or a sentence when there is nothing)."""
    if output is ListFormat.JSON:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))
    else:
        stdout_console().print(table)
