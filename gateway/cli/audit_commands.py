"""Security reviewers' commands: read and verify the audit log."""

from __future__ import annotations

import base64
import csv
import json
import os
import sys
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway.audit import checkpoint
from gateway.cli.common import literal, operator_services
from gateway.errors import IntegrityError, InvalidInput, NotFound, NotYetCovered, Unavailable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from gateway.audit.anchors import AnchoredCheckpoint, AnchorStore
    from gateway.audit.log import AuditLog, StoredEntry
    from gateway.audit.verify import Report

console = Console(soft_wrap=True)
app = typer.Typer(help="Read and verify the audit log.", no_args_is_help=True)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSONL = "jsonl"
    CSV = "csv"


class ReportFormat(StrEnum):
    """How a command reports: a line for people, or one JSON object for scripts.

    Local to this module until the commands share one ``--format`` option.
    """

    TEXT = "text"
    JSON = "json"


ReportFormatOption = Annotated[
    ReportFormat,
    typer.Option("--format", help="text, or json: one JSON object on stdout, same exit status."),
]


class DecisionFilter(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@app.command("verify")
def verify(
    since: Annotated[
        Path | None,
        typer.Option("--from", help="A checkpoint you trust: verify only what came after it."),
    ] = None,
    anchors: Annotated[
        str | None,
        typer.Option(
            help="Anchor store to check the log against: file://DIR, s3://BUCKET or "
            "s3://BUCKET/PREFIX (default: WEIGHTGATE_CHECKPOINT_ANCHOR, else "
            "$WEIGHTGATE_HOME/checkpoints).",
        ),
    ] = None,
    output: ReportFormatOption = ReportFormat.TEXT,
) -> None:
    """Recompute the log, check every signed and anchored checkpoint; non-zero exit on failure.

    Exit 0 when everything holds, 8 on any integrity failure, and 4 when the
    log is empty: nothing was verified, which is not the same as "ok".
    """
    from gateway.audit.anchors import open_anchor_store
    from gateway.audit.verify import frontier_nodes, trusted_start, verify_log

    services = operator_services()
    audit, public_key = services.audit, services.keys.audit_signer.public_key()
    anchor_store = (
        services.anchors
        if anchors is None
        else open_anchor_store(
            anchors,
            clock=services.clock,
            s3_endpoint_url=services.settings.s3_endpoint_url,
        )
    )
    start = None
    if since is not None:
        try:
            note = since.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read {since}: {exc.strerror}") from None
        size = checkpoint.verify(note, audit.origin, public_key).size
        start = trusted_start(
            note, audit.origin, public_key, audit.read_nodes(frontier_nodes(size))
        )
    state = audit.tree_state()
    report = verify_log(
        audit.entries(start=start.size if start else 0),
        origin=audit.origin,
        public_key=public_key,
        checkpoint_notes=audit.checkpoint_notes(),
        anchored=_anchored(anchor_store, explicit=anchors is not None, audit=audit),
        state=state,
        start=start,
        workers=min(4, os.cpu_count() or 1),
    )
    verdict = _verdict(report, start.size if start else 0, anchor_store.location)
    if output is ReportFormat.JSON:
        typer.echo(json.dumps(verdict, sort_keys=True))
        if verdict["status"] != "ok":
            from gateway.cli.main import exit_status

            failure = NotFound("") if verdict["status"] == "empty" else IntegrityError("")
            raise typer.Exit(exit_status(failure))
        return
    if not report.ok:
        first = report.problems[0]
        where = f" at index {first.index}" if first.index is not None else ""
        for problem in report.problems[1:]:
            console.print(f"  also: {problem.kind}: {problem.message}", highlight=False)
        raise IntegrityError(f"audit log FAILED verification{where}: {first.kind}: {first.message}")
    if verdict["status"] == "empty":
        raise NotFound(
            "the audit log is empty: there is nothing to verify (no entries, no checkpoints)"
        )
    scope = (
        f"{report.size - start.size} new entries after {start.size}"
        if start
        else (f"{report.size} entries")
    )
    console.print(
        f"[green]ok[/]: {scope}, {report.checkpoints - report.anchored} signed checkpoints "
        f"verified in the database and {report.anchored} anchored at {anchor_store.location}",
        highlight=False,
    )
    if report.unsigned:
        console.print(
            f"{report.unsigned} newest entries are not yet covered by a checkpoint "
            f"(one is published every {services.settings.checkpoint_interval:g} s)",
            highlight=False,
        )


def _verdict(report: Report, start: int, anchors: str) -> dict[str, object]:
    """What ``audit verify --format json`` prints: the report, and ok, failed or empty."""
    status = "failed" if not report.ok else "empty" if report.size == 0 else "ok"
    return {
        "status": status,
        "size": report.size,
        "verified_from": start,
        "checkpoints_in_database": report.checkpoints - report.anchored,
        "checkpoints_anchored": report.anchored,
        "anchor_store": anchors,
        "unsigned": report.unsigned,
        "problems": [
            {"index": p.index, "kind": p.kind, "message": p.message} for p in report.problems
        ],
    }


def _anchored(store: AnchorStore, *, explicit: bool, audit: AuditLog) -> list[AnchoredCheckpoint]:
    """Every anchored checkpoint; none yet is fine only where none was ever published."""
    try:
        return list(store.checkpoints())
    except Unavailable:
        # The default directory appears with the first checkpoint. Missing
        # while the database holds checkpoints, it was removed: a finding.
        if explicit or audit.checkpoints.newest() is not None:
            raise
        return []


@app.command("prove")
def prove(
    index: Annotated[int, typer.Argument(min=0, metavar="INDEX")],
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            max=600,
            help="Seconds to wait for a checkpoint to cover a new entry (default: answer at once).",
        ),
    ] = 0,
) -> None:
    """Print entry INDEX's receipt (c2sp.org/tlog-proof) against the latest checkpoint, checked."""
    from gateway.audit.receipt import format_receipt, parse_receipt, verify_receipt

    services = operator_services()
    audit = services.audit
    note, leaf, path = _covered(audit, index, wait)
    size = checkpoint.verify(note, audit.origin, audit.public_key).size
    text = format_receipt(index, path, note)
    verify_receipt(parse_receipt(text), leaf, audit.origin, services.keys.audit_signer.public_key())
    typer.echo(text, nl=False)
    Console(stderr=True).print(
        f"[green]ok[/]: entry {index} is in the log of size {size}", highlight=False
    )


def _covered(audit: AuditLog, index: int, wait: float) -> tuple[str, bytes, list[bytes]]:
    """The receipt's material once a checkpoint covers ``index``, waiting up to ``wait`` s."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return audit.receipt_material(index)
        except NotYetCovered:
            if time.monotonic() >= deadline:
                raise
            # The publisher signs at most once an interval; ask again a little after.
            time.sleep(min(audit.checkpoint_interval / 4, max(0.0, deadline - time.monotonic())))


@app.command("public-key")
def public_key() -> None:
    """Print the audit signing key's public half (base64), for witnesses and verifiers."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = operator_services().keys.audit_signer.public_key()
    typer.echo(base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode())


@app.command("witness-key")
def witness_key(
    key: Annotated[
        Path, typer.Argument(metavar="KEY", help="The witness's Ed25519 key (PEM); made if absent.")
    ],
    name: Annotated[str, typer.Option(help="The witness's name in signed notes.")],
) -> None:
    """Print the witness's entry for WEIGHTGATE_WITNESSES_FILE; makes the key first if need be.

    The key stays with the witness (its own trust domain); only the printed
    public half goes to the gateway's operator.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.crypto.keyfiles import ed25519_to_pem, load_ed25519, write_secret
    from gateway.names import is_printable

    if not (len(name) <= 200 and is_printable(name) and checkpoint.valid_key_name(name)):
        raise InvalidInput("--name must be 1-200 printable characters, with no space and no '+'")
    if not key.exists():
        write_secret(key, ed25519_to_pem(Ed25519PrivateKey.generate()))
    raw = load_ed25519(key).public_key().public_bytes_raw()
    entry = {"name": name, "public_key": base64.b64encode(raw).decode()}
    typer.echo(json.dumps([entry], indent=2))


@app.command("witness")
def witness(
    key: Annotated[Path, typer.Option(help="The witness's Ed25519 key (PEM); created if absent.")],
    name: Annotated[str, typer.Option(help="The witness's name in signed notes.")],
    log_key: Annotated[str, typer.Option(help="The log's public key (`audit public-key`).")],
    state: Annotated[Path, typer.Option(help="Where the last cosigned checkpoint is kept.")],
    origin: Annotated[str, typer.Option(help="The log's origin line.")] = "weightgate.local/audit",
) -> None:
    """Check the gateway's latest checkpoint extends the last one cosigned, then cosign it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.client.gateway_api import GatewayClient
    from gateway.client.witness import witness_once
    from gateway.config import ClientSettings
    from gateway.crypto.keyfiles import ed25519_to_pem, load_ed25519, write_secret

    if not key.exists():
        write_secret(key, ed25519_to_pem(Ed25519PrivateKey.generate()))
    signer = load_ed25519(key)
    log_public = _log_public_key(log_key)
    settings = ClientSettings()
    with GatewayClient(settings.url, settings.token) as client:
        outcome = witness_once(
            client, origin=origin, log_key=log_public, name=name, key=signer, state=state
        )
    raw = signer.public_key().public_bytes_raw()
    console.print(
        f"[green]cosigned[/] size {outcome.size} (consistent with {outcome.previous_size})"
        f"; witness key {base64.b64encode(raw).decode()}",
        highlight=False,
    )


# A receipt is a few dozen lines; an entry at most a few MiB (a large model's file list).
MAX_RECEIPT_BYTES = 1 << 20
MAX_ENTRY_BYTES = 16 << 20


@app.command("verify-receipt")
def verify_receipt_file(
    receipt_file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A receipt (`audit prove`, /v1/audit/receipts).")
    ],
    log_key: Annotated[str, typer.Option(help="The log's public key (`audit public-key`).")],
    entry: Annotated[
        Path,
        typer.Option(
            help="The entry's exact bytes (GET /v1/audit/entries/{index}/raw): the receipt "
            "proves the inclusion of one leaf hash, and this is what it must hash to."
        ),
    ],
    origin: Annotated[
        str | None,
        typer.Option(help="The log's origin line (default: the receipt checkpoint's own)."),
    ] = None,
) -> None:
    """Check a receipt offline: the log's signature on its checkpoint, then ENTRY's inclusion.

    Needs nothing but the files and the key: no gateway, no database.
    Exit 0 if the entry is in the signed log, 8 if anything does not hold.
    """
    from gateway.audit.merkle import leaf_hash
    from gateway.audit.receipt import parse_receipt, verify_receipt

    key = _log_public_key(log_key)
    try:
        text = _read_bounded(receipt_file, MAX_RECEIPT_BYTES, "FILE").decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError(f"{receipt_file} is not a UTF-8 receipt") from None
    parsed = parse_receipt(text)
    logged = _read_bounded(entry, MAX_ENTRY_BYTES, "--entry")
    named = origin if origin is not None else parsed.checkpoint_note.split("\n", 1)[0]
    signed = verify_receipt(parsed, leaf_hash(logged), named, key)
    # The leaf is proven; the entry must also name that position and log.
    try:
        data = json.loads(logged)
    except ValueError:
        raise IntegrityError(f"{entry} is not an audit entry (not JSON)") from None
    if not isinstance(data, dict) or (data.get("index"), data.get("origin")) != (
        parsed.index,
        named,
    ):
        raise IntegrityError(f"{entry} does not name index {parsed.index} of {named}")
    console.print(
        f"[green]ok[/]: entry {parsed.index} ({data.get('event')}) is in {named}, "
        f"tree size {signed.size}, under a checkpoint signed by the given key",
        highlight=False,
    )


def _read_bounded(path: Path, limit: int, flag: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InvalidInput(f"{flag} {path} is larger than {limit:,} bytes")
    return data


def _log_public_key(text: str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError:
        raise InvalidInput(
            "--log-key must be the base64 Ed25519 key `audit public-key` prints"
        ) from None


def _when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{flag} must be an ISO 8601 date or time, not {value!r}") from None
    # Without an offset a time is UTC, as the log stores it: never the local
    # zone of whichever machine a reviewer happens to run this on.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO 8601; UTC unless an offset is given).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this time (ISO 8601; UTC unless an offset is given).")
    ] = None,
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
    from gateway.audit.events import EVENTS

    if event is not None and event not in EVENTS:
        # A misspelt type would match nothing and read as "no such events happened".
        raise InvalidInput(
            f"--event {event!r} is not an audit event type; one of: {', '.join(EVENTS)}"
        )
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
            table.add_row(*(literal(flat[i]) for i in (0, 1, 2, 3, 4, 6, 8, 9, 10)))
        console.print(table)
