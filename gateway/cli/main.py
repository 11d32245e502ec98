"""The entry point and the CLI's one error handler.

Domain errors become a one-line message and an exit status here and nowhere
else; a user mistake never prints a traceback, and neither does a mistyped
command line (click's usage box becomes one line too).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from gateway import errors
from gateway.cli import (
    admin_commands,
    audit_commands,
    exemption_commands,
    key_commands,
    operator_commands,
    user_commands,
)
from gateway.cli.common import DENIED
from gateway.cli.gc_command import register as register_gc
from gateway.cli.needs import NEEDS

if TYPE_CHECKING:
    # Typer carries its own copy of click; only its public names are used at run time.
    from typer._click.core import Command

# The one list of exit statuses: README.md's table and `weightgate --help` are
# both checked against it by the tests.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "done; `policy explain`: the policy allows"),
    (1, "`demo`: a step did not behave as described"),
    (2, "bad input: a mistyped command line, an unknown country, a bad value"),
    (3, "refused: no or an untrusted token, a missing role, a policy denial"),
    (4, "not found: no such model, organisation, grant, exemption, audit entry"),
    (5, "conflict: it exists already, or its state forbids the change"),
    (6, "expired or revoked: the token or the grant"),
    (7, "unavailable: a dependency, the network, the port; or not ready yet"),
    (8, "an integrity check failed: a signature, a checksum, the audit log"),
    (9, "not enough disk space"),
    (10, "a quota is used up (the message says when to try again)"),
)
EXIT_STATUS: dict[type[errors.WeightgateError], int] = {
    errors.InvalidInput: 2,
    errors.Unauthenticated: DENIED,
    errors.Forbidden: DENIED,
    errors.NotFound: 4,
    errors.Conflict: 5,
    errors.TokenExpired: 6,
    errors.Gone: 6,
    errors.Unavailable: 7,
    errors.NotYetCovered: 7,
    errors.IntegrityError: 8,
    errors.InsufficientSpace: 9,
    errors.QuotaExceeded: 10,
}
USAGE_ERROR = 2
INTERRUPTED = 130


def _version() -> str:
    try:
        return version("weightgate")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"weightgate {_version()}")
        raise typer.Exit(0)


app = typer.Typer(
    name="weightgate",
    help="Export-controlled, audited, encrypted downloads of closed model weights.",
    epilog="Exit status:\n" + "\n".join(f"{code:>3}  {meaning}" for code, meaning in EXIT_CODES),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    _version_flag: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Export-controlled, audited, encrypted downloads of closed model weights."""


operator_commands.register(app)
key_commands.register(operator_commands.keys_app)
user_commands.register(app)
admin_commands.register(app)
register_gc(app)
app.add_typer(audit_commands.app, name="audit")
app.add_typer(exemption_commands.app, name="exemptions")


@cache
def command() -> Command:
    """The command tree, each command's help ending with what it needs to run."""
    root = typer.main.get_command(app)
    _add_needs(root, ())
    return root


def _add_needs(node: Command, path: tuple[str, ...]) -> None:
    children: dict[str, Command] | None = getattr(node, "commands", None)
    if children is not None:
        for name, child in children.items():
            _add_needs(child, (*path, name))
        return
    needs = NEEDS.get(" ".join(path))
    if needs is not None:
        node.epilog = f"Needs: {needs}"


def exit_status(error: errors.WeightgateError) -> int:
    for kind in type(error).__mro__:
        if kind in EXIT_STATUS:
            return EXIT_STATUS[kind]
    return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error(stderr: Console, label: str, message: str) -> None:
    # Messages quote what the user typed: shown as text, never read as markup.
    stderr.print(Text.assemble((label, "bold red"), " ", _one_line(message)))


def _command_line_mistake(stderr: Console, exc: typer.TyperException) -> int:
    """Click's usage errors (typer carries its own copy of click) as one line."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        # Nothing was asked: show the help (rich help is printed by now).
        if exc.format_message().strip():
            typer.echo(exc.format_message())
        return USAGE_ERROR
    if exc.exit_code == USAGE_ERROR:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "weightgate"
        _error(stderr, "error:", f"{exc.format_message()} (see {where} --help)")
        return USAGE_ERROR
    _error(stderr, "error:", exc.format_message())
    return exc.exit_code


def _domain_error(stderr: Console, exc: errors.WeightgateError) -> int:
    if not isinstance(exc, errors.PolicyDenied):
        _error(stderr, "error:", exc.message)
        return exit_status(exc)
    _error(stderr, "denied:", exc.message)
    for reason in exc.detail.get("decision", {}).get("reasons", []):
        stderr.print(
            Text.assemble(
                f"  {reason['code']}: {_one_line(reason['message'])}  ",
                (f"({reason['citation']})", "dim"),
            )
        )
    return exit_status(exc)


def run(args: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status; every failure is one line on stderr."""
    stderr = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        result = command().main(
            args=list(args) if args is not None else None,
            prog_name="weightgate",
            standalone_mode=False,
        )
    except typer.TyperException as exc:
        return _command_line_mistake(stderr, exc)
    except errors.WeightgateError as exc:
        return _domain_error(stderr, exc)
    except (typer.Abort, KeyboardInterrupt):
        stderr.print("interrupted")
        return INTERRUPTED
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
