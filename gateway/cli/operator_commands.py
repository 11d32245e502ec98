"""Operator commands: run on the gateway's host against its configuration."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    FormatOption,
    ListFormat,
    literal,
    operator_context,
    operator_services,
    print_listing,
)
from gateway.clock import SystemClock
from gateway.config import DEFAULT_HOST, DEFAULT_PORT, Settings
from gateway.crypto.keyring import init_keys
from gateway.errors import InvalidInput, WeightgateError
from gateway.identity import dev_issuer
from gateway.identity.dpop import key_thumbprint, load_proof_key
from gateway.identity.principal import Role
from gateway.policy.classification import parse_training_ops
from gateway.policy.countries import country_code
from gateway.policy.pack import Eccn

if TYPE_CHECKING:
    import socket

    from gateway.bootstrap import Services

console = Console(soft_wrap=True)
keys_app = typer.Typer(help="Key material in WEIGHTGATE_KEYS_DIR.", no_args_is_help=True)
orgs_app = typer.Typer(help="The organisation registry.", no_args_is_help=True)
models_app = typer.Typer(help="The model catalog.", no_args_is_help=True)
_TRANSFER_COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    DownloadColumn(),
    TransferSpeedColumn(),
    TimeRemainingColumn(),
)
token_app = typer.Typer(help="Development tokens (local use and tests only).", no_args_is_help=True)


@keys_app.command("init")
def keys_init(
    dev_issuer_wanted: Annotated[
        bool,
        typer.Option(
            "--dev-issuer",
            help="Also create a development token issuer for `weightgate token mint` "
            "(laptops, the demo and tests; whoever reads its key mints any token).",
        ),
    ] = False,
) -> None:
    """Create the keys and the gateway's state (WEIGHTGATE_HOME); never overwrites."""
    from gateway.bootstrap import create_state, state_location

    settings = Settings()
    created = init_keys(settings.keys_dir, dev_issuer=dev_issuer_wanted)
    for item in created:
        console.print(f"created {item}")
    if create_state(settings):
        variable, where = state_location(settings)
        console.print(f"created the gateway's state in {where} ({variable})", highlight=False)
    elif not created:
        console.print(f"all keys already exist in {settings.keys_dir.resolve()}; nothing changed")


def migrate_command() -> None:
    """Bring the database's schema to the newest revision and exit: a deploy's one-shot step.

    Every replica also migrates at start, under a lock; running this first makes a
    migration that fails stop the deploy before any replica is replaced.
    """
    from gateway.bootstrap import create_state, state_location

    settings = Settings()
    created = create_state(settings)
    variable, where = state_location(settings)
    if created:
        console.print(f"created the gateway's state in {where} ({variable})", highlight=False)
    else:
        console.print(f"the gateway's state in {where} is at the newest schema", highlight=False)


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
    """Print a JWT from the development issuer (created by `keys init --dev-issuer`)."""
    bind_to = key_thumbprint(load_proof_key(dpop_key)) if dpop_key else None
    settings = Settings()
    token = dev_issuer.mint(
        settings.keys_dir,
        SystemClock(),
        subject=sub,
        org=org,
        country=country_code(country),
        roles=role or [Role.ML],
        ttl=timedelta(seconds=ttl),
        bind_to=bind_to,
    )
    trust = dev_issuer.trust(
        settings.keys_dir,
        setting=settings.dev_issuer,
        issuers_configured=settings.issuers_file is not None,
    )
    if trust is dev_issuer.Trust.REFUSED:
        Console(stderr=True, soft_wrap=True).print(
            "[bold yellow]warning:[/] this gateway refuses development tokens while "
            "WEIGHTGATE_ISSUERS_FILE is set (unless WEIGHTGATE_DEV_ISSUER=allow)",
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
def orgs_list(output: FormatOption = ListFormat.TABLE) -> None:
    """List registered organisations."""
    orgs = operator_services().catalog.orgs()
    table = Table("id", "name", "hq", "parent hq", "aliases")
    for org in orgs:
        table.add_row(
            *map(literal, (org.id, org.name, org.hq, org.parent_hq or "-", ", ".join(org.aliases)))
        )
    document = {
        "orgs": [
            {
                "id": org.id,
                "name": org.name,
                "hq": org.hq,
                "parent_hq": org.parent_hq,
                "aliases": list(org.aliases),
            }
            for org in orgs
        ]
    }
    print_listing(output, document, table)


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
    stderr = Console(stderr=True)
    # A bar on a terminal, as fetch has; nothing when stderr is a file or a pipe.
    # It appears once the checks have passed and the encryption begins.
    bar = Progress(*_TRANSFER_COLUMNS, console=stderr, disable=not stderr.is_terminal)
    task = bar.add_task(f"{model}@{revision}", total=None)

    def started(total: int) -> None:
        bar.update(task, total=total)
        bar.start()

    try:
        rows = services.catalog.publish(
            directory,
            model_id=model,
            revision=revision,
            eccn=classification,
            training_ops=ops,
            weights_published=weights_published,
            below_frontier_reason=below_frontier,
            context=operator_context(),
            on_start=started,
            progress=lambda n: bar.advance(task, n),
        )
    except KeyboardInterrupt:
        bar.stop()
        stderr.print(
            f"interrupted: {model}@{revision} was not published and what it had uploaded "
            "was deleted (`weightgate gc` lists anything left)",
            highlight=False,
        )
        raise typer.Exit(130) from None
    finally:
        bar.stop()
    total = sum(r.plaintext_size for r in rows)
    view = services.catalog.model(model)
    console.print(f"classified {view.eccn.value}: {view.classification_basis}")
    console.print(f"published {model}@{revision}: {len(rows)} files, {total:,} bytes, encrypted")


@models_app.command("list")
def models_list(output: FormatOption = ListFormat.TABLE) -> None:
    """List models and their classification."""
    models = operator_services().catalog.models()
    table = Table("model", "eccn", "basis", "training ops", "revisions")
    for model in models:
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
    # The same fields as GET /v1/models; training compute as exact decimal text.
    document = {
        "models": [
            {
                "id": model.id,
                "eccn": model.eccn.value,
                "classification_basis": model.classification_basis,
                "training_ops": None if model.training_ops is None else str(model.training_ops),
                "revisions": list(model.revisions),
            }
            for model in models
        ]
    }
    print_listing(output, document, table)


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = DEFAULT_PORT,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Processes to serve with, on one database and one audit log."
        ),
    ] = 1,
) -> None:
    """Run the gateway (N processes with --workers; SIGHUP re-reads pack and list with one)."""
    from gateway.api.app import create_app
    from gateway.api.logging_setup import resolve_format, serve_console
    from gateway.api.server import listening_socket, run_single, run_workers
    from gateway.bootstrap import build_services

    # The port is this process's, listening, before anything is created or recorded.
    sock = listening_socket(host, port)
    log_format = resolve_format(Settings().log_format)
    stderr = serve_console(log_format)
    settings = _public_settings(sock, stderr)
    # Built here first whatever the worker count: configuration mistakes fail
    # once, clearly, and the state is created (or migrated) before any worker starts.
    services = build_services(settings)
    # A misconfigured anchor store (an S3 bucket without Object Lock, a
    # directory that cannot be written) is refused here, not at the first round.
    services.anchors.check()
    _warn_about_dev_issuer(services, stderr)
    _report_policy(services, stderr)
    if workers == 1:
        _reload_on_sighup(services, stderr)
        run_single(create_app(services, owns_services=True), sock, log_format=log_format)
        return
    services.close()
    run_workers(sock, workers, log_format=log_format)


def _public_settings(sock: socket.socket, stderr: Console) -> Settings:
    """The settings, with the URLs issued naming the address bound unless WEIGHTGATE_URL is set."""
    from gateway.api.server import bound_url, listens_everywhere, url_names

    settings = Settings()
    bound = bound_url(sock)
    if "url" in settings.model_fields_set:
        if not url_names(settings.url, sock):
            stderr.print(
                f"[bold yellow]warning:[/] WEIGHTGATE_URL is {settings.url}, but serve "
                f"listens on {bound}: the URLs it issues name WEIGHTGATE_URL, so clients "
                "must reach this gateway there (through a proxy or port mapping)",
                highlight=False,
            )
        return settings
    if listens_everywhere(sock):
        stderr.print(
            f"[bold yellow]warning:[/] WEIGHTGATE_URL is unset, so the URLs issued name "
            f"{bound}, which only this host can reach; set it to the address clients use",
            highlight=False,
        )
    # Worker processes read their settings from the environment.
    os.environ["WEIGHTGATE_URL"] = bound
    return settings.model_copy(update={"url": bound})


def _warn_about_dev_issuer(services: Services, stderr: Console) -> None:
    issuer_key = (services.settings.keys_dir / dev_issuer.PRIVATE_KEY_FILE).resolve()
    if services.dev_issuer is dev_issuer.Trust.TRUSTED:
        stderr.print(
            "[bold red]WARNING: the development token issuer is trusted: whoever can read "
            f"{issuer_key} mints tokens with any role. For laptops and tests only.[/]",
            highlight=False,
        )
    elif services.dev_issuer is dev_issuer.Trust.REFUSED:
        stderr.print(
            "[bold yellow]warning:[/] the development token issuer in "
            f"{issuer_key.parent} is not trusted beside WEIGHTGATE_ISSUERS_FILE; delete "
            f"its files ({dev_issuer.PRIVATE_KEY_FILE}, {dev_issuer.JWKS_FILE})",
            highlight=False,
        )


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


def _reload_on_sighup(services: Services, stderr: Console) -> None:
    """SIGHUP re-reads the configured pack and screening list; a bad one is reported and stays."""

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


def demo(
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="After the story, keep serving (with the console) until Ctrl-C, "
            "and print the console's URL and tokens to sign in with.",
        ),
    ] = False,
) -> None:
    """The whole story on embedded defaults, in a temporary home."""
    from gateway.demo import run_demo

    raise typer.Exit(run_demo(console, serve=serve))


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(token_app, name="token")
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(models_app, name="models")
    app.command("migrate")(migrate_command)
    app.command("serve")(serve)
    app.command("demo")(demo)
