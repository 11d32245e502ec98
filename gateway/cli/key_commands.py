"""KEK rotation commands (`weightgate keys rotate | status | retire`), on the operator's host."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.common import literal, operator_context, operator_services
from gateway.errors import IntegrityError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gateway.key_rotation import KeyRotation, RotationProgress

console = Console(soft_wrap=True)


@contextmanager
def _rotation() -> Iterator[KeyRotation]:
    from gateway.key_rotation import KeyRotation

    services = operator_services()
    try:
        yield KeyRotation(
            services.sessions,
            audit=services.audit,
            keystore=services.keystore.backing,
            clock=services.clock,
        )
    finally:
        services.close()


def keys_status() -> None:
    """The current KEK, every other one, and how many data keys each still wraps."""
    with _rotation() as rotation:
        uses = rotation.status()
    table = Table("state", "data keys", "kek")
    for use in uses:
        state = "current" if use.current else "held" if use.in_keystore else "not listed"
        # The KEK last, so a long KMS key ARN is never cut short.
        table.add_row(state, f"{use.data_keys:,}", literal(use.kek_id))
    console.print(table)
    waiting = sum(u.data_keys for u in uses if not u.current)
    if waiting:
        console.print(f"{waiting:,} data keys are not under the current KEK: run `keys rotate`")


def keys_rotate(
    batch_size: Annotated[
        int, typer.Option(help="Data keys re-wrapped per transaction (1-1000).")
    ] = 200,
) -> None:
    """Re-wrap every data key under a new current KEK; safe to interrupt and run again.

    With the local keystore a new KEK version is created first, unless an
    earlier rotation is unfinished, which is then finished. With KMS the key
    that WEIGHTGATE_KEYSTORE names (or its alias points at) is the target.
    """
    with _rotation() as rotation:
        result = rotation.rotate(operator_context(), batch_size=batch_size, progress=_report)
    if result.rewrapped or result.created:
        console.print(
            f"{result.rewrapped:,} data keys re-wrapped under {result.target} in "
            f"{result.batches} batch{'' if result.batches == 1 else 'es'}; "
            "the weights were not touched",
            highlight=False,
        )
    else:
        # KMS: AWS rotates the key's material itself; nothing here to re-wrap.
        console.print(
            f"every data key is already under {result.target}; to move to a new KMS key, "
            "point the alias or WEIGHTGATE_KEYSTORE at it first (see keys/README.md)",
            highlight=False,
        )
    if result.unreadable:
        raise IntegrityError(
            f"{len(result.unreadable)} data keys did not unwrap and were left as they are: "
            + ", ".join(result.unreadable[:5])
            + (" ..." if len(result.unreadable) > 5 else "")
        )


def _report(progress: RotationProgress) -> None:
    if progress.done == 0:
        if progress.created:
            console.print(f"created {progress.target}; new data keys are wrapped under it")
        if progress.pending:
            console.print(
                f"{progress.pending:,} data keys to re-wrap under {progress.target}",
                highlight=False,
            )
    else:
        console.print(f"re-wrapped {progress.done:,} of {progress.pending:,}", highlight=False)


def keys_retire(
    kek: Annotated[str, typer.Argument(help="The KEK id, e.g. local:v1 or kms:<key ARN>.")],
) -> None:
    """Disable a KEK that no data key uses any more (local: moved to kek/retired/)."""
    with _rotation() as rotation:
        rotation.retire(kek, operator_context())
    console.print(f"retired {kek}", highlight=False)


def register(keys_app: typer.Typer) -> None:
    keys_app.command("status")(keys_status)
    keys_app.command("rotate")(keys_rotate)
    keys_app.command("retire")(keys_retire)
