"""infra/docker-compose.yml: accepted by `docker compose config`, and the stack it promises.

``docker-compose`` here is the compose v2 binary that ``docker compose`` runs as a
CLI plugin (tests/infra/tools.py); ``config`` reads and checks the file and
contacts no Docker engine.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.infra.tools import tool

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "infra" / "docker-compose.yml"
SECRETS = {
    "POSTGRES_PASSWORD": "test-postgres",
    "MINIO_ROOT_USER": "test-user",
    "MINIO_ROOT_PASSWORD": "test-minio",
}
LONG_RUNNING = {"postgres", "minio", "gateway-1", "gateway-2", "proxy"}
ONE_SHOT = {"buckets", "init"}


def compose_config(environment: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # An explicit, empty env file: a developer's infra/.env must not decide the result.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    files = ["--file", str(COMPOSE_FILE), "--env-file", str(env_file)]
    return subprocess.run(
        [str(tool("docker-compose")), *files, "config", "--format", "json"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **environment},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def resolved(tmp_path: Path) -> dict[str, Any]:
    result = compose_config(SECRETS, tmp_path)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    services = resolved(tmp_path)["services"]
    assert set(services) == LONG_RUNNING | ONE_SHOT


def test_it_refuses_to_start_without_each_secret(tmp_path: Path) -> None:
    for missing in SECRETS:
        environment = {k: v for k, v in SECRETS.items() if k != missing}
        result = compose_config(environment, tmp_path)
        assert result.returncode != 0
        assert f"required variable {missing} is missing" in result.stderr


def test_no_secret_is_written_in_the_file() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    environments = [raw["x-gateway-environment"]]
    environments += [s.get("environment", {}) for s in raw["services"].values()]
    for environment in environments:
        if not isinstance(environment, dict):
            continue
        for name, value in environment.items():
            if any(word in name for word in ("PASSWORD", "SECRET", "ACCESS_KEY")):
                assert str(value).startswith("${"), f"{name} is written in the file"
    for secret in SECRETS.values():
        assert secret not in COMPOSE_FILE.read_text(encoding="utf-8")


def test_two_gateway_replicas_behind_the_proxy_on_postgres_and_minio(tmp_path: Path) -> None:
    services = resolved(tmp_path)["services"]
    for name in ("gateway-1", "gateway-2"):
        gateway = services[name]
        assert gateway["command"][0] == "serve"
        environment = gateway["environment"]
        assert environment["WEIGHTGATE_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert environment["WEIGHTGATE_STORAGE"] == "s3://weightgate-weights"
        assert environment["WEIGHTGATE_CHECKPOINT_ANCHOR"] == "s3://weightgate-audit"
        assert gateway["read_only"] is True
        assert gateway["cap_drop"] == ["ALL"]
        assert any(
            v["target"] == "/etc/weightgate/keys" and v["read_only"] for v in gateway["volumes"]
        )
        depends = gateway["depends_on"]
        assert depends["init"]["condition"] == "service_completed_successfully"
        assert depends["buckets"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
    nginx = (REPO / "infra" / "proxy" / "nginx.conf").read_text(encoding="utf-8")
    assert "server gateway-1:8080" in nginx
    assert "server gateway-2:8080" in nginx
    proxy = services["proxy"]
    assert {d for d, c in proxy["depends_on"].items() if c["condition"] == "service_healthy"} == {
        "gateway-1",
        "gateway-2",
    }
    # The gateways believe X-Forwarded-For from the proxy's fixed address only.
    address = proxy["networks"]["backend"]["ipv4_address"]
    trusted = services["gateway-1"]["environment"]["WEIGHTGATE_TRUSTED_PROXIES"]
    assert trusted == f"{address}/32"


def test_healthchecks_and_one_shot_init_services(tmp_path: Path) -> None:
    services = resolved(tmp_path)["services"]
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no"
        assert "healthcheck" not in services[name]
    init = "\n".join(services["init"]["command"])
    assert "weightgate keys init" in init
    assert "weightgate migrate" in init
    buckets = "\n".join(services["buckets"]["command"])
    assert "mc version enable local/weightgate-weights" in buckets
    assert "--with-lock local/weightgate-audit" in buckets
