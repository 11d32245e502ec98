"""Admins' exemption commands. They go through the HTTP API, so who did what comes from a token."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.common import literal, parse_day
from gateway.errors import InvalidInput

console = Console(soft_wrap=True)
app = typer.Typer(
    help="Licenses and validated end users, under a two-person rule.", no_args_is_help=True
)


def _call(method: str, path: str, **kwargs: Any) -> Any:
    from gateway.client.gateway_api import GatewayClient
    from gateway.config import ClientSettings

    settings = ClientSettings()
    with GatewayClient(settings.url, settings.token) as client:
        return client.call(method, path, **kwargs)


def _show(exemption: dict[str, Any]) -> None:
    approvals = f"{len(exemption['approvals'])}/{exemption['approvals_required']}"
    console.print(
        f"{exemption['id']}  [bold]{exemption['status']}[/]  {exemption['kind']} "
        f"{exemption['reference']} for {exemption['org']}: {', '.join(exemption['countries'])}; "
        f"models {', '.join(exemption['models'])}; until {exemption['until']}; "
        f"approvals {approvals}",
        highlight=False,
    )


@app.command("propose")
def propose(
    org: Annotated[str, typer.Option(help="The organisation it covers.")],
    kind: Annotated[str, typer.Option(help="license, uveu or nveu.")],
    reference: Annotated[str, typer.Option(help="The license or authorisation number.")],
    countries: Annotated[str, typer.Option(help="Comma-separated ISO codes.")],
    models: Annotated[str, typer.Option(help="Comma-separated model ids, or *.")],
    until: Annotated[str, typer.Option(help="Last day it is valid (YYYY-MM-DD).")],
    reason: Annotated[str, typer.Option(help="Why; kept in the audit log.")],
) -> None:
    """Propose an exemption; a different admin must approve it."""
    last_day = parse_day(until, what="--until")
    if last_day is None:
        raise InvalidInput("--until is required")
    body = {
        "org": org,
        "kind": kind,
        "reference": reference,
        "countries": [c.strip() for c in countries.split(",") if c.strip()],
        "models": [m.strip() for m in models.split(",") if m.strip()],
        "until": last_day.isoformat(),
        "reason": reason,
    }
    _show(_call("POST", "/v1/exemptions", json=body))


@app.command("approve")
def approve(exemption_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Approve a proposal (not your own)."""
    _show(_call("POST", f"/v1/exemptions/{exemption_id}/approve"))


@app.command("reject")
def reject(
    exemption_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Why; kept in the audit log.")],
) -> None:
    """Reject a proposal, with a reason."""
    _show(_call("POST", f"/v1/exemptions/{exemption_id}/reject", json={"reason": reason}))


@app.command("revoke")
def revoke(exemption_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke an exemption at once: grants that rest on it stop working."""
    _show(_call("POST", f"/v1/exemptions/{exemption_id}/revoke"))


@app.command("list")
def list_exemptions() -> None:
    """Every exemption and its state."""
    table = Table(
        "id", "status", "kind", "reference", "org", "countries", "models", "until", "approvals"
    )
    for item in _call("GET", "/v1/exemptions")["exemptions"]:
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
    console.print(table)
