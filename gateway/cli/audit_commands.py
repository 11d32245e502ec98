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
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.TABLE
    ),
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries.")] = 1000,
) -> None:
    """Read the log, filtered."""
    rows = operator_services().audit.query(
        subject=subject,
        org=org,
        model=model,
        event=event,
        decision=decision.value if decision else None,
        since=_when(since, "--since"),
        until=_when(until, "--until"),
        limit=limit,
    )
    if output is OutputFormat.JSONL:
        for row in rows:
            typer.echo(
                json.dumps({**row.as_dict(), "leaf_hash": row.leaf_hash.hex()}, sort_keys=True)
            )
    elif output is OutputFormat.CSV:
        writer = csv.writer(sys.stdout)
        writer.writerow(
            [
                "index",
                "time",
                "event",
                "subject",
                "org",
                "model",
                "revision",
                "decision",
                "tier",
                "reasons",
                "grant_id",
                "leaf_hash",
            ]
        )
        for row in rows:
            writer.writerow(_flat(row))
    else:
        table = Table(
            "#", "time", "event", "subject", "org", "model", "decision", "tier", "reasons"
        )
        for row in rows:
            flat = _flat(row)
            table.add_row(*(str(flat[i]) for i in (0, 1, 2, 3, 4, 5, 7, 8, 9)))
        console.print(table)


def _flat(row: StoredEntry) -> list[object]:
    data = row.as_dict()
    actor = data.get("actor") or {}
    decision = data.get("decision") or {}
    codes = " ".join(r["code"] for r in decision.get("reasons", []))
    return [
        row.index,
        data.get("time", ""),
        data.get("event", ""),
        actor.get("subject") or "",
        actor.get("org") or "",
        data.get("model", ""),
        data.get("revision", ""),
        decision.get("effect", ""),
        decision.get("tier", ""),
        codes,
        data.get("grant_id", ""),
        row.leaf_hash.hex(),
    ]
