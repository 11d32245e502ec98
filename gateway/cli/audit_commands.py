"""Security reviewers' commands: read and verify the audit log."""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.common import operator_services
from gateway.errors import IntegrityError, InvalidInput

if TYPE_CHECKING:
    from gateway.audit.log import StoredEntry

console = Console(soft_wrap=True)
app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSONL = "jsonl"
    CSV = "csv"


class DecisionFilter(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@app.command("verify")
def verify() -> None:
    """Recompute the whole log and check every signed checkpoint."""
    from gateway.audit.verify import verify_log

    services = operator_services()
    report = verify_log(
        services.audit.entries(),
        origin=services.audit.origin,
        public_key=services.keys.audit_signer.public_key(),
        checkpoint_notes=services.audit.checkpoint_notes(),
        state=services.audit.tree_state(),
    )
    if not report.ok:
        first = report.problems[0]
        where = f" at index {first.index}" if first.index is not None else ""
        for problem in report.problems[1:]:
            console.print(f"  also: {problem.kind}: {problem.message}", highlight=False)
        raise IntegrityError(f"audit log FAILED verification{where}: {first.kind}: {first.message}")
    console.print(
        f"[green]ok[/]: {report.size} entries, {report.checkpoints} signed checkpoints verified",
        highlight=False,
    )


def _when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{flag} must be an ISO 8601 date or time, not {value!r}") from None
    return parsed if parsed.tzinfo else parsed.astimezone()


@app.command("query")
def query(
    subject: Annotated[str | None, typer.Option(help="Only this subject.")] = None,
    org: Annotated[str | None, typer.Option(help="Only this organisation.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event type.")] = None,
    decision: Annotated[DecisionFilter | None, typer.Option(help="allow or deny.")] = None,
    country: Annotated[str | None, typer.Option(help="Only requesters located here.")] = None,
    tier: Annotated[
        int | None, typer.Option(min=1, max=3, help="Only this effective tier.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    after: Annotated[int, typer.Option(min=-1, help="Only entries after this index.")] = -1,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.TABLE
    ),
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries.")] = 1000,
    remote: Annotated[
        bool, typer.Option(help="Ask the gateway at WEIGHTGATE_URL with WEIGHTGATE_TOKEN.")
    ] = False,
) -> None:
    """Read the log, filtered: a table, JSON Lines mapped to OCSF, or CSV."""
    start, end = _when(since, "--since"), _when(until, "--until")
    verdict = decision.value if decision else None
    located = country.upper() if country else None
    rows: list[StoredEntry]
    if remote:
        filters = {
            "subject": subject,
            "org": org,
            "model": model,
            "event": event,
            "decision": verdict,
            "country": located,
            "tier": tier,
            "since": start.isoformat() if start else None,
            "until": end.isoformat() if end else None,
        }
        rows = _remote_rows({k: v for k, v in filters.items() if v is not None}, after, limit)
    else:
        rows = operator_services().audit.query(
            subject=subject,
            org=org,
            model=model,
            event=event,
            decision=verdict,
            country=located,
            tier=tier,
            since=start,
            until=end,
            after=after,
            limit=limit,
        )
    _print(rows, output)


def _remote_rows(filters: dict[str, str | int], after: int, limit: int) -> list[StoredEntry]:
    """Entries through the API, each checked against the leaf hash the gateway states."""
    from gateway.audit.log import StoredEntry
    from gateway.audit.merkle import leaf_hash
    from gateway.canonical import canonical_json
    from gateway.client.gateway_api import GatewayClient
    from gateway.config import ClientSettings

    settings = ClientSettings()
    rows: list[StoredEntry] = []
    with GatewayClient(settings.url, settings.token) as client:
        while len(rows) < limit:
            page = client.call(
                "GET",
                "/v1/audit/entries",
                params={**filters, "after": after, "limit": min(1000, limit - len(rows))},
            )
            for item in page["entries"]:
                stated = bytes.fromhex(item.pop("leaf_hash"))
                entry = canonical_json(item)
                if leaf_hash(entry) != stated:
                    raise IntegrityError(f"entry {item.get('index')} does not match its leaf hash")
                rows.append(StoredEntry(int(item["index"]), entry, stated))
            if page["next_after"] is None:
                break
            after = int(page["next_after"])
    return rows


def _print(rows: list[StoredEntry], output: OutputFormat) -> None:
    from gateway import __version__
    from gateway.audit.export import CSV_COLUMNS, to_csv_row, to_ocsf

    if output is OutputFormat.JSONL:
        for row in rows:
            typer.echo(json.dumps(to_ocsf(row, product_version=__version__), sort_keys=True))
    elif output is OutputFormat.CSV:
        writer = csv.writer(sys.stdout)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(to_csv_row(row))
    else:
        table = Table(
            "#", "time", "event", "subject", "org", "model", "decision", "tier", "reasons"
        )
        for row in rows:
            flat = to_csv_row(row)
            table.add_row(*(str(flat[i]) for i in (0, 1, 2, 3, 4, 6, 8, 9, 10)))
        console.print(table)
