"""Operator commands: run on the gateway's host against its configuration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway.catalog import parse_training_ops
from gateway.cli.common import operator_context, operator_services
from gateway.clock import SystemClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.errors import InvalidInput
from gateway.identity import dev_issuer
from gateway.identity.principal import Role
from gateway.policy.countries import country_code
from gateway.policy.pack import Eccn

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
) -> None:
    """Print a JWT from the development issuer."""
    token = dev_issuer.mint(
        Settings().keys_dir,
        SystemClock(),
        subject=sub,
        org=org,
        country=country_code(country),
        roles=role or [Role.ML],
        ttl=timedelta(seconds=ttl),
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
) -> None:
    """Register an organisation."""
    services = operator_services()
    org = services.catalog.add_org(
        org_id, name=name, hq=hq, parent_hq=parent_hq, context=operator_context()
    )
    parent = f", parent HQ {org.parent_hq}" if org.parent_hq else ""
    console.print(f"registered {org.id} ({org.name}), HQ {org.hq}{parent}")


@models_app.command("publish")
def models_publish(
    directory: Annotated[Path, typer.Argument(metavar="DIR")],
    model: Annotated[str, typer.Option(help="Model id, NAME or ORG/NAME.")],
    revision: Annotated[str, typer.Option(help="Revision name.")],
    eccn: Annotated[str, typer.Option(help="Export classification: 4E091 or EAR99.")],
    training_ops: Annotated[
        str | None, typer.Option(help="Training operations, e.g. 3e26 (fine-tuning counts).")
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
        context=operator_context(),
    )
    total = sum(r.plaintext_size for r in rows)
    console.print(
        f"published {model}@{revision} ({classification.value}): "
        f"{len(rows)} files, {total:,} bytes, encrypted"
    )


@models_app.command("list")
def models_list() -> None:
    """List models and their classification."""
    table = Table("model", "eccn", "training ops", "revisions")
    for model in operator_services().catalog.models():
        table.add_row(
            model.id, model.eccn.value, model.training_ops or "-", ", ".join(model.revisions)
        )
    console.print(table)


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = 8080,
) -> None:
    """Run the gateway."""
    import uvicorn

    from gateway.api.app import create_app

    services = operator_services()
    if services.trusts_dev_issuer:
        Console(stderr=True).print(
            "[bold yellow]warning:[/] the development token issuer is trusted; delete "
            f"{services.settings.keys_dir / dev_issuer.JWKS_FILE} in production",
            soft_wrap=True,
        )
    uvicorn.run(create_app(services), host=host, port=port, log_level="info")


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
