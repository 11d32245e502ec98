"""The entry point and the CLI's one error handler.

Domain errors become a one-line message and an exit status here and nowhere
else; a user mistake never prints a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from gateway import errors
from gateway.cli import (
    audit_commands,
    exemption_commands,
    key_commands,
    operator_commands,
    user_commands,
)

EXIT_STATUS: dict[type[errors.WeightgateError], int] = {
    errors.InvalidInput: 2,
    errors.Unauthenticated: 3,
    errors.Forbidden: 3,
    errors.NotYetCovered: 7,
    errors.NotFound: 4,
    errors.Conflict: 5,
    errors.Gone: 6,
    errors.Unavailable: 7,
    errors.IntegrityError: 8,
    errors.InsufficientSpace: 9,
    errors.QuotaExceeded: 10,
}

app = typer.Typer(
    name="weightgate",
    help="Export-controlled, audited, encrypted downloads of closed model weights.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
operator_commands.register(app)
key_commands.register(operator_commands.keys_app)
user_commands.register(app)
app.add_typer(audit_commands.app, name="audit")
app.add_typer(exemption_commands.app, name="exemptions")


def exit_status(error: errors.WeightgateError) -> int:
    for kind in type(error).__mro__:
        if kind in EXIT_STATUS:
            return EXIT_STATUS[kind]
    return 1


def main() -> None:
    stderr = Console(stderr=True, soft_wrap=True)
    try:
        app()
    except errors.PolicyDenied as exc:
        stderr.print(f"[bold red]denied:[/] {exc.message}", highlight=False)
        for reason in exc.detail.get("decision", {}).get("reasons", []):
            stderr.print(
                f"  {reason['code']}: {reason['message']}  [dim]({reason['citation']})[/]",
                highlight=False,
            )
        sys.exit(exit_status(exc))
    except errors.WeightgateError as exc:
        stderr.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        sys.exit(exit_status(exc))
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)
