"""User commands: they speak to the gateway over HTTP with WEIGHTGATE_TOKEN."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from gateway.cli.common import parse_day
from gateway.client.fetch import fetch
from gateway.client.gateway_api import GatewayClient
from gateway.config import ClientSettings, Settings
from gateway.errors import InvalidInput
from gateway.policy.decision import Decision
from gateway.policy.explain import explain
from gateway.policy.pack import load_pack

console = Console(soft_wrap=True)
policy_app = typer.Typer(help="The export policy.", no_args_is_help=True)


def fetch_command(
    target: Annotated[str, typer.Argument(metavar="MODEL[@REV]")],
    out: Annotated[Path, typer.Option(help="Directory to write the files into.")],
    workers: Annotated[int, typer.Option(min=1, max=64, help="Parallel ranged downloads.")] = 8,
) -> None:
    """Request a grant, download in parallel, decrypt and verify every file."""
    model, _, revision = target.partition("@")
    if not model or (target.endswith("@")):
        raise InvalidInput("give the model as MODEL or MODEL@REVISION")
    settings = ClientSettings()
    client = GatewayClient(settings.url, settings.token)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
            task = progress.add_task(f"{model}", total=None)

            def granted(grant: dict[str, Any]) -> None:
                total = sum(int(f["size"]) for f in grant["files"])
                progress.update(
                    task, total=total, description=f"{grant['model']}@{grant['revision']}"
                )

            files = fetch(
                client,
                model,
                revision or None,
                out,
                workers=workers,
                on_grant=granted,
                progress=lambda n: progress.advance(task, n),
            )
    finally:
        client.close()
    for item in files:
        console.print(
            f"[green]verified[/] {item.path}  sha256:{item.sha256[:16]}…  {item.size:,} B"
        )


@policy_app.command("explain")
def policy_explain(
    country: Annotated[str, typer.Option(help="Requester location, ISO 3166-1 alpha-2.")],
    org_hq: Annotated[str | None, typer.Option(help="Organisation headquarters.")] = None,
    parent_hq: Annotated[str | None, typer.Option(help="Ultimate parent's headquarters.")] = None,
    ip_country: Annotated[str | None, typer.Option(help="Country of the client IP.")] = None,
    eccn: Annotated[str, typer.Option(help="4E091 or EAR99.")] = "4E091",
    at: Annotated[str | None, typer.Option(help="Decide as of this day (YYYY-MM-DD).")] = None,
    policy: Annotated[str | None, typer.Option(help="Pack name or .toml path.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The decision and its reasons, without a request."""
    pack = load_pack(policy or Settings().policy)
    decision = explain(
        pack,
        country=country,
        org_hq=org_hq,
        parent_hq=parent_hq,
        ip_country=ip_country,
        eccn=eccn,
        on=parse_day(at) or date.today(),
    )
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), indent=2))
    else:
        print_decision(console, decision)
    raise typer.Exit(0 if decision.allowed else 1)


def print_decision(out: Console, decision: Decision) -> None:
    colour = "green" if decision.allowed else "red"
    out.print(
        f"[bold {colour}]{decision.effect.upper()}[/]  Tier {decision.tier}  "
        f"{decision.eccn.value}  ({decision.policy} {decision.policy_version}, "
        f"as of {decision.on.isoformat()})",
        highlight=False,
    )
    for reason in decision.reasons:
        out.print(
            f"  {reason.code}: {reason.message}  [dim]({reason.citation})[/]", highlight=False
        )


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch_command)
    app.add_typer(policy_app, name="policy")
