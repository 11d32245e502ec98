"""Admins' exemption commands. They go through the HTTP API, so who did what comes from a token."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gateway.cli.common import (
    FormatOption,
    ListFormat,
    api_call,
    literal,
    parse_day,
    path_segment,
    print_listing,
    stdout_console,
)
from gateway.errors import InvalidInput
from gateway.policy.countries import country_code
from gateway.policy.exemptions import ExemptionKind

app = typer.Typer(
    help="Licenses and validated end users, under a two-person rule.", no_args_is_help=True
)


def _by_id(exemption_id: str, action: str = "") -> str:
    return f"/v1/exemptions/{path_segment(exemption_id, what='an exemption id')}{action}"


def _show(exemption: dict[str, Any]) -> None:
    approvals = f"{len(exemption['approvals'])}/{exemption['approvals_required']}"
    # What admins wrote is shown as written, never read as markup.
    stdout_console().print(
        Text.assemble(
            f"{exemption['id']}  ",
            (str(exemption["status"]), "bold"),
            f"  {exemption['kind']} {exemption['reference']} for {exemption['org']}: "
            f"{', '.join(exemption['countries'])}; models {', '.join(exemption['models'])}; "
            f"until {exemption['until']}; approvals {approvals}",
        )
    )


@app.command("propose")
def propose(
    org: Annotated[str, typer.Option(help="The organisation it covers.")],
    kind: Annotated[
        ExemptionKind,
        typer.Option(help="license (a BIS licence), uveu or nveu (validated end users)."),
    ],
    reference: Annotated[str, typer.Option(help="The license or authorisation number.")],
    countries: Annotated[str, typer.Option(help="Comma-separated ISO codes.")],
    models: Annotated[str, typer.Option(help="Comma-separated model ids, or *.")],
    until: Annotated[str, typer.Option(help="Last day it is valid (YYYY-MM-DD).")],
    reason: Annotated[str, typer.Option(help="Why; kept in the audit log.")],
    output: FormatOption = ListFormat.TABLE,
) -> None:
    """Propose an exemption; a different admin must approve it (`--format json` for its id)."""
    last_day = parse_day(until, what="--until")
    if last_day is None:
        raise InvalidInput("--until is required")
    body = {
        "org": org,
        "kind": kind.value,
        "reference": reference,
        "countries": [
            country_code(c, what="--countries") for c in countries.split(",") if c.strip()
        ],
        "models": [m.strip() for m in models.split(",") if m.strip()],
        "until": last_day.isoformat(),
        "reason": reason,
    }
    proposed = api_call("POST", "/v1/exemptions", json=body)
    if output is ListFormat.JSON:
        print_listing(output, proposed, "")
    else:
        _show(proposed)


@app.command("approve")
def approve(exemption_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Approve a proposal (not your own)."""
    _show(api_call("POST", _by_id(exemption_id, "/approve")))


@app.command("reject")
def reject(
    exemption_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Why; kept in the audit log.")],
) -> None:
    """Reject a proposal, with a reason."""
    _show(api_call("POST", _by_id(exemption_id, "/reject"), json={"reason": reason}))


@app.command("revoke")
def revoke(exemption_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke an exemption at once: grants that rest on it stop working."""
    _show(api_call("POST", _by_id(exemption_id, "/revoke")))


@app.command("list")
def list_exemptions(output: FormatOption = ListFormat.TABLE) -> None:
    """Every exemption and its state."""
    answer = api_call("GET", "/v1/exemptions")
    table = Table(
        "id", "status", "kind", "reference", "org", "countries", "models", "until", "approvals"
    )
    for item in answer["exemptions"]:
        table.add_row(
            *map(
                literal,
                (
                    item["id"],
                    item["status"],
                    item["kind"],
                    item["reference"],
                    item["org"],
                    ", ".join(item["countries"]),
                    ", ".join(item["models"]),
                    item["until"],
                    f"{len(item['approvals'])}/{item['approvals_required']}",
                ),
            )
        )
    print_listing(output, {"exemptions": answer["exemptions"]}, table)
