"""User commands: they speak to the gateway over HTTP with WEIGHTGATE_TOKEN."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
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
from rich.table import Table

from gateway.cli.common import (
    DENIED,
    FormatOption,
    ListFormat,
    literal,
    operator_services,
    parse_day,
    print_listing,
    stdout_console,
)
from gateway.client.decrypt import decrypt_downloads, load_grant
from gateway.client.fetch import FetchOptions, fetch
from gateway.client.gateway_api import GatewayClient
from gateway.client.hf_cache import HuggingFaceLayout
from gateway.config import ClientSettings, Settings
from gateway.crypto.keyfiles import write_secret
from gateway.crypto.keyrelease import HYBRID, X25519, ClientKeyPair
from gateway.errors import InvalidInput, WeightgateError
from gateway.identity.dpop import load_proof_key
from gateway.policy.decision import Decision
from gateway.policy.diff import TierChange, decision_changes, tier_changes, tier_moves
from gateway.policy.explain import explain
from gateway.policy.pack import load_pack

console = Console(soft_wrap=True)
policy_app = typer.Typer(help="The export policy.", no_args_is_help=True)


def fetch_command(
    target: Annotated[str, typer.Argument(metavar="MODEL[@REV]")],
    out: Annotated[Path | None, typer.Option(help="Directory to write the files into.")] = None,
    hf_cache: Annotated[
        Path | None,
        typer.Option(help="Lay files out as a Hugging Face cache here (models--ORG--NAME/...)."),
    ] = None,
    include: Annotated[
        list[str] | None, typer.Option(help="Only files matching this glob; repeatable.")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Skip files matching this glob; repeatable.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Parallel ranged downloads.")] = 8,
    post_quantum: Annotated[
        bool, typer.Option(help="Have file keys sealed with the ML-KEM-768 + X25519 hybrid.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Replace files already there that differ from the granted ones.")
    ] = False,
) -> None:
    """Request a grant, download in parallel, decrypt and verify every file; resumes.

    The disk is checked against the revision's file list before the grant is
    requested; files already there with the granted SHA-256 are kept, not
    downloaded again, and when all are there no grant is requested.
    """
    model, _, revision = target.partition("@")
    if not model or target.endswith("@"):
        raise InvalidInput("give the model as MODEL or MODEL@REVISION")
    if (out is None) == (hf_cache is None):
        raise InvalidInput("give exactly one of --out DIR and --hf-cache DIR")
    destination = out or hf_cache or Path()
    options = FetchOptions(
        workers=workers,
        kem=HYBRID if post_quantum else X25519,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        layout=(lambda m, r: HuggingFaceLayout(destination, m, r)) if hf_cache else None,
        force=force,
    )
    settings = ClientSettings()
    dpop_key = load_proof_key(settings.dpop_key) if settings.dpop_key else None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    stderr = Console(stderr=True)
    # The bar is for a terminal, and goes away when done: an error is then the
    # only line on stderr, and a log or a pipe gets no redrawn frames.
    bar = Progress(*columns, console=stderr, transient=True, disable=not stderr.is_terminal)
    with GatewayClient(settings.url, settings.token, dpop_key=dpop_key) as client, bar as progress:
        task = progress.add_task(model, total=None)

        def granted(grant: dict[str, Any]) -> None:
            total = sum(int(f["size"]) for f in grant["files"])
            progress.update(task, total=total, description=f"{grant['model']}@{grant['revision']}")

        files = fetch(
            client,
            model,
            revision or None,
            destination,
            options,
            on_grant=granted,
            progress=lambda n: progress.advance(task, n),
        )
    resumed = sum(item.resumed_bytes for item in files)
    if resumed:
        console.print(f"resumed: {resumed:,} bytes were already verified by an earlier run")
    for item in files:
        state = "[green]already there, verified[/]" if item.reused else "[green]verified[/]"
        console.print(f"{state} {item.path}  sha256:{item.sha256[:16]}…  {item.size:,} B")


def keygen(
    out: Annotated[Path, typer.Option(help="Where to write the private key (created 0600).")],
    post_quantum: Annotated[
        bool, typer.Option(help="An ML-KEM-768 + X25519 hybrid key instead of X25519.")
    ] = False,
) -> None:
    """Make a recipient key for a grant requested with curl; prints the request fields."""
    keys = ClientKeyPair.generate(HYBRID if post_quantum else X25519)
    write_secret(out, keys.to_file())
    typer.echo(
        json.dumps(
            {"recipient_key": keys.recipient_key(), "recipient_kem": keys.kem, "envelopes": ["v2"]}
        )
    )


def decrypt_command(
    grant: Annotated[Path, typer.Argument(metavar="GRANT_JSON", help="The grant, as saved.")],
    key: Annotated[Path, typer.Option(help="The key file `weightgate keygen` wrote.")],
    source: Annotated[Path, typer.Option("--in", help="Where the ciphertext was downloaded.")],
    out: Annotated[Path, typer.Option(help="Directory to write the decrypted files into.")],
    force: Annotated[
        bool, typer.Option(help="Replace files already there that differ from the granted ones.")
    ] = False,
) -> None:
    """Decrypt and verify files downloaded with curl, using the grant and your key."""
    try:
        raw_key = key.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {key}: {exc.strerror}") from None
    files = decrypt_downloads(
        load_grant(grant), ClientKeyPair.from_file(raw_key), source, out, force=force
    )
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
    """The decision and its reasons, without a request; exit status 0 allow, 3 deny."""
    settings = Settings()
    pack = load_pack(policy or settings.policy, search_dir=settings.policy_dir)
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
    raise typer.Exit(0 if decision.allowed else DENIED)


@policy_app.command("diff")
def policy_diff(
    pack_a: Annotated[str, typer.Argument(metavar="PACK_A", help="Pack name or .toml path.")],
    pack_b: Annotated[str, typer.Argument(metavar="PACK_B", help="Pack name or .toml path.")],
    at: Annotated[str | None, typer.Option(help="The day to compare (YYYY-MM-DD).")] = None,
    to: Annotated[
        str | None, typer.Option(help="Evaluate PACK_B on this day instead (YYYY-MM-DD).")
    ] = None,
    since_days: Annotated[
        int, typer.Option(min=1, max=3650, help="Replay grant decisions this many days back.")
    ] = 30,
    output: FormatOption = ListFormat.TABLE,
) -> None:
    """Countries whose tier changes, and organisations and recent grants decided differently."""
    settings = Settings()
    a = load_pack(pack_a, search_dir=settings.policy_dir)
    b = load_pack(pack_b, search_dir=settings.policy_dir)
    on_a = parse_day(at) or date.today()
    on_b = parse_day(to, what="--to") or on_a
    changes = tier_changes(a, b, on_a=on_a, on_b=on_b)
    document: dict[str, Any] = {
        "from": {"policy": a.name, "version": a.version, "on": on_a.isoformat()},
        "to": {"policy": b.name, "version": b.version, "on": on_b.isoformat()},
        "countries": [
            {"country": c.country, "name": c.name, "tier_before": c.before, "tier_after": c.after}
            for c in changes
        ],
    }
    out = stdout_console()
    if output is ListFormat.TABLE:
        out.print(
            f"[bold]{a.name} {a.version}[/] on {on_a} -> [bold]{b.name} {b.version}[/] on {on_b}",
            highlight=False,
        )
        out.print(_tier_change_table(changes) if changes else "countries: no tier changes")
    try:
        services = operator_services()
    except WeightgateError as exc:
        # Without the gateway's state, only the packs are compared; JSON says so in a field.
        document["not_compared"] = exc.message
        if output is ListFormat.JSON:
            print_listing(output, document, "")
        else:
            out.print(literal(f"organisations and grants: not compared ({exc.message})"))
        return
    from gateway.impact import exemption_changes, organisation_cases, recent_grant_cases

    now = datetime.now(UTC)
    cases = organisation_cases(services.catalog, now) + recent_grant_cases(
        services.audit, now - timedelta(days=since_days)
    )
    decided = decision_changes(cases, a, b, on_a=on_a, on_b=on_b)
    changed = exemption_changes(services.exemptions.list(), a, b, on_a=on_a, on_b=on_b)
    if output is ListFormat.JSON:
        document["cases_compared"] = len(cases)
        document["cases"] = [
            {
                "case": moved.label,
                "before": {"effect": moved.before.effect, "tier": moved.before.tier},
                "after": {"effect": moved.after.effect, "tier": moved.after.tier},
            }
            for moved in decided
        ]
        document["exemptions"] = changed
        print_listing(output, document, "")
        return
    table = Table("case", "before", "after", title="organisations and recent grants")
    for moved in decided:
        table.add_row(
            literal(moved.label),
            f"{moved.before.effect} (Tier {moved.before.tier})",
            f"{moved.after.effect} (Tier {moved.after.tier})",
        )
    out.print(
        table
        if decided
        else f"organisations and recent grants: {len(cases)} compared, none decided differently"
    )
    for line in changed:
        out.print(literal(f"exemption {line}"))
    if not changed:
        out.print("exemptions: none would cover differently")


def _tier_change_table(changes: list[TierChange]) -> Table:
    """One row per country, or per move (before -> after) when many countries share it."""
    table = Table("country", "name", "tier before", "tier after", title="countries")
    for move in tier_moves(changes):
        before, after = str(move.before), str(move.after)
        if move.named:
            for change in move.changes:
                table.add_row(change.country, change.name, before, after)
        else:
            codes = " ".join(change.country for change in move.changes)
            table.add_row(f"{len(move.changes)} countries", codes, before, after)
    return table


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
    app.command("keygen")(keygen)
    app.command("decrypt")(decrypt_command)
    app.add_typer(policy_app, name="policy")
