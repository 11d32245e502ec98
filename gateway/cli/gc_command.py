"""``weightgate gc``: list, and on request delete, ciphertext that no published file names."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway import gc
from gateway.cli.common import literal, operator_context, operator_services
from gateway.errors import Unavailable

console = Console(soft_wrap=True)


def gc_command(
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete what is listed (audited first).")
    ] = False,
    grace: Annotated[
        str,
        typer.Option(
            help="Leave anything younger than this (30m, 6h, 2d): it may belong to a "
            "publish still running. Keep it longer than your longest publish."
        ),
    ] = "1d",
) -> None:
    """List stored ciphertext no published file names (what a killed publish left); --delete it."""
    window = gc.parse_grace(grace)
    services = operator_services()
    found = gc.find(services.blobs, services.sessions, now=services.clock.now(), grace=window)
    if found.deletable:
        table = Table("key", "version", "bytes", "stored", "state")
        for column in table.columns[:2]:
            column.overflow = "fold"  # whole, so they can be copied
        for blob in found.deletable:
            table.add_row(
                *map(
                    literal,
                    (
                        blob.key,
                        blob.version,
                        f"{blob.size:,}",
                        blob.modified.strftime("%Y-%m-%d %H:%M:%S"),
                        "stored" if blob.complete else "unfinished upload",
                    ),
                )
            )
        console.print(table)
    summary = f"{len(found.deletable)} unreferenced, {found.deletable_bytes:,} bytes"
    if found.too_young:
        summary += f"; {len(found.too_young)} more younger than {grace} left alone"
    if not delete:
        hint = "; run with --delete to delete them" if found.deletable else ""
        console.print(summary + hint, highlight=False)
        return
    result = gc.delete(
        found,
        blobs=services.blobs,
        sessions=services.sessions,
        audit=services.audit,
        clock=services.clock,
        context=operator_context(),
        grace=window,
    )
    freed = sum(blob.size for blob in result.deleted)
    console.print(f"deleted {len(result.deleted)}, {freed:,} bytes", highlight=False)
    if result.failed:
        blob, reason = result.failed[0]
        raise Unavailable(
            f"{len(result.failed)} could not be deleted, e.g. {blob.key} ({reason}); "
            "run gc again once storage is back"
        )


def register(app: typer.Typer) -> None:
    app.command("gc")(gc_command)
