"""``weightgate decrypt``: for files fetched with curl, the grant JSON and a ``keygen`` key.

The same checks as ``fetch``: every chunk authenticated, the SHA-256 the grant
promised, and a file renamed into place only once it verified.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.client.destination import Found, check_output_dir, find
from gateway.client.grant_session import GrantedFile, open_grant
from gateway.client.hf_cache import PlainLayout
from gateway.crypto.fileformat import chunk_count, sealed_span
from gateway.crypto.keyrelease import ClientKeyPair
from gateway.errors import Conflict, IntegrityError, InvalidInput, NotFound

_BATCH_CHUNKS = 256  # 4 MiB of plaintext at a time


@dataclass(frozen=True)
class DecryptedFile:
    path: Path
    size: int
    sha256: str


def load_grant(path: Path) -> dict[str, Any]:
    try:
        grant: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        for key in ("id", "subject", "model", "revision", "expires_at", "files"):
            grant[key]
    except (OSError, ValueError, KeyError, TypeError):
        raise InvalidInput(f"{path} is not a grant as POST /v1/grants returns it") from None
    return grant


def decrypt_downloads(
    grant: dict[str, Any],
    keys: ClientKeyPair,
    source_dir: Path,
    out_dir: Path,
    *,
    force: bool = False,
) -> list[DecryptedFile]:
    """Decrypt each granted file found at ``source_dir/PATH`` into ``out_dir/PATH``.

    As with ``fetch``, a file already there with the granted SHA-256 is kept,
    and one that differs is replaced only with ``force``; all of that is
    judged before anything is written.
    """
    check_output_dir(out_dir)
    layout = PlainLayout(out_dir)
    work: list[tuple[GrantedFile, Path, Path]] = []
    results: list[DecryptedFile] = []
    differing: list[Path] = []
    # Every file key opens before any file is read: a grant that does not
    # open under this key fails at once, not after hours of decryption.
    for file in open_grant(grant, keys.private):
        target = layout.target(file.path, file.sha256)
        found = find(target, file.size, file.sha256)
        if found is Found.GRANTED_BYTES:
            results.append(DecryptedFile(target, file.size, file.sha256))
            continue
        if found is Found.OTHER_BYTES and not force:
            differing.append(target)
        source = source_dir / file.path
        if not source.is_file():
            raise NotFound(f"no downloaded ciphertext at {source}")
        work.append((file, source, target))
    if differing:
        raise Conflict(
            f"{len(differing)} file(s) already exist and differ from the granted ones "
            f"({', '.join(str(p) for p in differing[:3])}): --force replaces them"
        )
    results.extend(_decrypt_one(file, source, target) for file, source, target in work)
    return results


def _decrypt_one(file: GrantedFile, source: Path, target: Path) -> DecryptedFile:
    if source.stat().st_size != file.ciphertext_size:
        raise IntegrityError(
            f"{source} is {source.stat().st_size:,} bytes, the grant says "
            f"{file.ciphertext_size:,}: download it again"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".weightgate-part")
    digest = hashlib.sha256()
    try:
        with source.open("rb") as sealed, partial.open("wb") as plain:
            for first in range(0, chunk_count(file.size), _BATCH_CHUNKS):
                count = min(_BATCH_CHUNKS, chunk_count(file.size) - first)
                start, end = sealed_span(file.size, first, count)
                sealed.seek(start)
                for chunk in file.decryptor.decrypt_chunks(
                    first, sealed.read(end - start), count=count
                ):
                    digest.update(chunk)
                    plain.write(chunk)
            plain.flush()
            os.fsync(plain.fileno())
    except BaseException:
        # Plaintext that did not verify is never left about, not even half of it.
        partial.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != file.sha256:
        partial.unlink()
        raise IntegrityError(f"{file.path}: SHA-256 does not match the grant")
    partial.replace(target)
    return DecryptedFile(target, file.size, file.sha256)
