"""A small deployment for scenario tests: several real ``weightgate serve`` processes, one database.

Tokens come from a test issuer configured as a production one would be
(a JWKS file, EdDSA, one-time tokens), so every request carries its own
``jti`` and a replayed token is refused across every replica.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from gateway.api.background import free_port
from gateway.bootstrap import build_services
from gateway.clock import SystemClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.demo import write_synthetic_model
from gateway.policy.pack import Eccn
from gateway.state.database import make_engine, session_factory
from gateway.state.tables import TreeState
from tests.conftest import MODEL, REVISION, operator

WEIGHTGATE = str(Path(sys.executable).with_name("weightgate"))
ISSUER = "https://idp.scenario.test"
SHIPPED_PACK = Path(__file__).parents[2] / "gateway/policy/packs/ai-diffusion-2025.toml"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll an observable condition with a deadline: synchronisation, not a sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@dataclass
class Replica:
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def said(self) -> str:
        """What the process wrote to stdout and stderr (its log file is written unbuffered)."""
        return Path(self.log.name).read_text(encoding="utf-8")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> dict[str, Any] | None:
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=2)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops a pod, and wait for the process to end."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


@dataclass
class Deployment:
    root: Path
    database_url: str | None
    issuer_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    replicas: list[Replica] = field(default_factory=list)

    def __post_init__(self) -> None:
        packs = self.root / "packs"
        packs.mkdir(parents=True)
        shipped = SHIPPED_PACK.read_text(encoding="utf-8")
        no_germany = shipped.replace('name = "ai-diffusion-2025"', 'name = "no-germany"')
        (packs / "no-germany.toml").write_text(
            "\n".join(line for line in no_germany.splitlines() if 'country = "DE"' not in line),
            encoding="utf-8",
        )
        public = self.issuer_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64url(public), "kid": "k1", "alg": "EdDSA"}
        (self.root / "idp.jwks.json").write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")
        issuers = [
            {
                "issuer": ISSUER,
                "audience": "weightgate",
                "jwks_file": str(self.root / "idp.jwks.json"),
                "algorithms": ["EdDSA"],
                "one_time_tokens": True,
            }
        ]
        (self.root / "issuers.json").write_text(json.dumps(issuers), encoding="utf-8")
        self.recipient = base64.b64encode(
            X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        ).decode()

    def env(self, port: int) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
        base.update(
            WEIGHTGATE_HOME=str(self.root / "home"),
            WEIGHTGATE_KEYS_DIR=str(self.root / "keys"),
            WEIGHTGATE_ISSUERS_FILE=str(self.root / "issuers.json"),
            WEIGHTGATE_POLICY_DIR=str(self.root / "packs"),
            WEIGHTGATE_CHECKPOINT_INTERVAL="0.2",
            WEIGHTGATE_URL=f"http://127.0.0.1:{port}",
        )
        if self.database_url:
            base["WEIGHTGATE_DATABASE_URL"] = self.database_url
        return base

    def settings(self) -> Settings:
        return Settings(
            home=self.root / "home",
            keys_dir=self.root / "keys",
            database_url=self.database_url,
            issuers_file=self.root / "issuers.json",
            policy_dir=self.root / "packs",
        )

    def prepare(self) -> None:
        """Keys, one German organisation and one small 4E091 model, as an operator would."""
        init_keys(self.root / "keys")
        services = build_services(self.settings(), SystemClock())
        try:
            services.catalog.add_org(
                "rhein", name="Rhein AI", hq="DE", parent_hq=None, context=operator()
            )
            source = self.root / "model"
            write_synthetic_model(source, shards=1, shard_bytes=4096)
            services.catalog.publish(
                source,
                model_id=MODEL,
                revision=REVISION,
                eccn=Eccn.AI_MODEL_WEIGHTS,
                training_ops=None,
                context=operator(),
            )
        finally:
            services.close()

    def start(self, port: int | None = None, *, workers: int = 1) -> Replica:
        port = port or free_port()
        log = (self.root / f"replica-{port}.log").open("ab")
        process = subprocess.Popen(
            [WEIGHTGATE, "serve", "--port", str(port), "--workers", str(workers)],
            env=self.env(port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        replica = Replica(port, process, log)
        self.replicas.append(replica)
        return replica

    def token(self, *, subject: str = "anna", roles: tuple[str, ...] = ("ml",)) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": "weightgate",
            "sub": subject,
            "org": "rhein",
            "country": "DE",
            "roles": list(roles),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.issuer_key, algorithm="EdDSA", headers={"kid": "k1"})

    def grant_body(self) -> dict[str, str]:
        return {"model": MODEL, "recipient_key": self.recipient}

    def tree_size(self) -> int:
        engine = make_engine(self.settings().resolved_database_url())
        try:
            with session_factory(engine)() as session:
                return int(session.scalar(select(TreeState.size)) or 0)
        finally:
            engine.dispose()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [WEIGHTGATE, *args],
            env=self.env(free_port()),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@contextmanager
def deployment(root: Path, database_url: str | None) -> Iterator[Deployment]:
    with prepared(Deployment(root, database_url)) as made:
        yield made


D = TypeVar("D", bound=Deployment)


@contextmanager
def prepared(made: D) -> Iterator[D]:
    """``made`` prepared (keys, one German org, one small model); its processes killed after."""
    made.prepare()
    try:
        yield made
    finally:
        for replica in made.replicas:
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait(timeout=30)
            replica.log.close()
