"""Operator commands: run on the gateway's host against its configuration."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.common import literal, operator_context, operator_services
from gateway.clock import SystemClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.errors import InvalidInput, WeightgateError
from gateway.identity import dev_issuer
from gateway.identity.dpop import key_thumbprint, load_proof_key
from gateway.identity.principal import Role
from gateway.policy.classification import parse_training_ops
from gateway.policy.countries import country_code
from gateway.policy.pack import Eccn

if TYPE_CHECKING:
    from gateway.bootstrap import Services

console = Console(soft_wrap=True)
keys_app = typer.Typer(help="Key material in WEIGHTGATE_KEYS_DIR.", no_args_is_help=True)
orgs_app = typer.Typer(help="The organisation registry.", no_args_is_help=True)
models_app = typer.Typer(help="The model catalog.", no_args_is_help=True)
token_app = typer.Typer(help="Development tokens (local use and tests only).", no_args_is_help=True)


@keys_app.command("init")
def keys_init() -> None:
    """Create the keystore, the audit signing key and a dev token issuer; never overwrites."""
    keys_dir = Settings().keys_dir
    created = init_keys(keys_dir)
    if created:
        for item in created:
            console.print(f"created {item}")
    else:
        console.print(f"all keys already exist in {keys_dir}; nothing changed")


@token_app.command("mint")
def token_mint(
    sub: Annotated[str, typer.Option(help="Subject (user or workload id).")],
    org: Annotated[str, typer.Option(help="Organisation id.")],
    country: Annotated[str, typer.Option(help="Requester location, ISO 3166-1 alpha-2.")],
    role: Annotated[list[Role] | None, typer.Option(help="Role; repeat for several.")] = None,
    ttl: Annotated[int, typer.Option(min=1, max=86_400, help="Lifetime in seconds.")] = 3600,
    dpop_key: Annotated[
        Path | None, typer.Option(help="Bind the token to this DPoP key (PEM, Ed25519 or P-256).")
    ] = None,
) -> None:
    """Print a JWT from the development issuer."""
    bind_to = key_thumbprint(load_proof_key(dpop_key)) if dpop_key else None
    token = dev_issuer.mint(
        Settings().keys_dir,
        SystemClock(),
        subject=sub,
        org=org,
        country=country_code(country),
        roles=role or [Role.ML],
        ttl=timedelta(seconds=ttl),
        bind_to=bind_to,
    )
    typer.echo(token)


@orgs_app.command("add")
def orgs_add(
    org_id: Annotated[str, typer.Argument(metavar="ID")],
    name: Annotated[str, typer.Option(help="Legal name.")],
    hq: Annotated[str, typer.Option(help="Headquarters country, ISO 3166-1 alpha-2.")],
    parent_hq: Annotated[
        str | None, typer.Option(help="Ultimate parent's headquarters country.")
    ] = None,
    alias: Annotated[
        list[str] | None, typer.Option(help="Another name it trades under; repeat for several.")
    ] = None,
) -> None:
    """Register an organisation (its name and aliases are screened now and on every list load)."""
    services = operator_services()
    org = services.catalog.add_org(
        org_id,
        name=name,
        hq=hq,
        parent_hq=parent_hq,
        aliases=tuple(alias or ()),
        context=operator_context(),
    )
    parent = f", parent HQ {org.parent_hq}" if org.parent_hq else ""
    console.print(literal(f"registered {org.id} ({org.name}), HQ {org.hq}{parent}"))


@orgs_app.command("list")
def orgs_list() -> None:
    """List registered organisations."""
    table = Table("id", "name", "hq", "parent hq", "aliases")
    for org in operator_services().catalog.orgs():
        table.add_row(
            *map(literal, (org.id, org.name, org.hq, org.parent_hq or "-", ", ".join(org.aliases)))
        )
    console.print(table)


@models_app.command("publish")
def models_publish(
    directory: Annotated[Path, typer.Argument(metavar="DIR")],
    model: Annotated[str, typer.Option(help="Model id, NAME or ORG/NAME.")],
    revision: Annotated[str, typer.Option(help="Revision name.")],
    eccn: Annotated[str, typer.Option(help="Export classification: 4E091 or EAR99.")],
    training_ops: Annotated[
        str | None, typer.Option(help="Training operations, e.g. 3e26 (fine-tuning counts).")
    ] = None,
    weights_published: Annotated[
        bool, typer.Option(help="The weights are published (15 CFR 734.7).")
    ] = False,
    below_frontier: Annotated[
        str | None,
        typer.Option(
            help="Why the model is less capable than the best published one.", metavar="REASON"
        ),
    ] = None,
) -> None:
    """Encrypt and upload a model directory, and register it."""
    try:
        classification = Eccn(eccn.upper())
    except ValueError:
        raise InvalidInput("--eccn must be 4E091 or EAR99") from None
    ops = parse_training_ops(training_ops) if training_ops is not None else None
    services = operator_services()
    rows = services.catalog.publish(
        directory,
        model_id=model,
        revision=revision,
        eccn=classification,
        training_ops=ops,
        weights_published=weights_published,
        below_frontier_reason=below_frontier,
        context=operator_context(),
    )
    total = sum(r.plaintext_size for r in rows)
    view = services.catalog.model(model)
    console.print(f"classified {view.eccn.value}: {view.classification_basis}")
    console.print(f"published {model}@{revision}: {len(rows)} files, {total:,} bytes, encrypted")


@models_app.command("list")
def models_list() -> None:
    """List models and their classification."""
    table = Table("model", "eccn", "basis", "training ops", "revisions")
    for model in operator_services().catalog.models():
        table.add_row(
            *map(
                literal,
                (
                    model.id,
                    model.eccn.value,
                    model.classification_basis,
                    model.training_ops or "-",
                    ", ".join(model.revisions),
                ),
            )
        )
    console.print(table)


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = 8080,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Processes to serve with, on one database and one audit log."
        ),
    ] = 1,
) -> None:
    """Run the gateway (N processes with --workers; SIGHUP re-reads pack and list with one)."""
    from gateway.api.app import create_app
    from gateway.api.server import listening_socket, run_single, run_workers

    sock = listening_socket(host, port)
    # Built here first whatever the worker count: configuration mistakes fail
    # once, clearly, and the schema is migrated before any worker starts.
    services = operator_services()
    # A misconfigured anchor store (an S3 bucket without Object Lock, a
    # directory that cannot be written) is refused here, not at the first round.
    services.anchors.check()
    stderr = Console(stderr=True, soft_wrap=True)
    if services.trusts_dev_issuer:
        stderr.print(
            "[bold yellow]warning:[/] the development token issuer is trusted; delete "
            f"{services.settings.keys_dir / dev_issuer.JWKS_FILE} in production",
        )
    _report_policy(services, stderr)
    if workers == 1:
        _reload_on_sighup(services)
        run_single(create_app(services, owns_services=True), sock)
        return
    services.close()
    run_workers(sock, workers)


def _report_policy(services: Services, stderr: Console) -> None:
    established = services.policy.establish(operator_context())
    in_force, configured = established.in_force, established.configured
    if in_force.sha256 != configured.sha256:
        stderr.print(
            f"[bold yellow]warning:[/] WEIGHTGATE_POLICY names {configured.name} "
            f"{configured.version}, but every replica enforces {in_force.name} "
            f"{in_force.version}, recorded in the database; switch with "
            "`POST /v1/policy/reload` (or SIGHUP to a single-process gateway)",
        )


def _reload_on_sighup(services: Services) -> None:
    """SIGHUP re-reads the configured pack and screening list; a bad one is reported and stays."""
    stderr = Console(stderr=True, soft_wrap=True)

    def reload() -> None:
        try:
            services.screening.reload(operator_context())
        except WeightgateError as exc:
            stderr.print(f"[bold red]screening list reload refused:[/] {exc.message}")
        try:
            pack = services.policy.reload(operator_context())
        except WeightgateError as exc:
            stderr.print(f"[bold red]policy reload refused:[/] {exc.message}")
            return
        stderr.print(f"policy switched to {pack.name} {pack.version} (sha256 {pack.sha256[:16]}…)")

    # The handler only starts a thread: reloading writes to the audit log, which
    # must not run inside a signal handler that may have interrupted a writer.
    signal.signal(signal.SIGHUP, lambda _signum, _frame: threading.Thread(target=reload).start())


def demo() -> None:
    """The whole story on embedded defaults, in a temporary home."""
    from gateway.demo import run_demo

    raise typer.Exit(run_demo(console))


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(token_app, name="token")
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(models_app, name="models")
    app.command("serve")(serve)
    app.command("demo")(demo)
