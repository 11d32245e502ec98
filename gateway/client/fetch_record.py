"""The files granted for a revision, kept beside them, so a re-run can be judged before any grant.

A revision, once published, never changes, so a file's SHA-256 recorded from
one grant of MODEL@REV holds for every later fetch of it, whatever its
``--include``/``--exclude``; the record keeps every file any grant of the
revision named here. It is written once a grant is issued, before the
download, so a finished fetch and an interrupted one both leave it. A re-run
hashes what is on disk against it: when every file it wants is there with
its SHA-256 the fetch is done without a grant, so it costs no quota. A
record that is missing, unreadable or for another revision is ignored, and
files are judged by their listed sizes as on a first fetch.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.errors import InvalidInput
from gateway.names import check_file_path

RECORD_DIR = ".weightgate"  # never a granted path: those start with a letter, digit or '_'
_VERSION = 1
_LARGEST = 4 << 20  # a record lists file names and hashes; anything larger is not ours
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class RecordedFile:
    path: str
    size: int
    sha256: str


def write_record(where: Path, model: str, revision: str, files: list[RecordedFile]) -> bool:
    """Write atomically (a record is the whole list or absent); say whether it was written.

    The files are already verified in place when this runs: failing to keep
    the record only costs the next run a grant, so it does not fail the fetch.
    """
    body = {
        "version": _VERSION,
        "model": model,
        "revision": revision,
        "files": [asdict(f) for f in files],
    }
    temporary = where.with_name(where.name + ".tmp")
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        temporary.replace(where)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        return False
    return True


def read_record(where: Path, model: str, revision: str) -> list[RecordedFile] | None:
    """The files recorded for ``model@revision``, or None if there is no usable record."""
    try:
        if where.stat().st_size > _LARGEST:
            return None
        body: Any = json.loads(where.read_text(encoding="utf-8"))
        if not isinstance(body, dict) or body.get("version") != _VERSION:
            return None
        if (body["model"], body["revision"]) != (model, revision):
            return None
        files = [_file(entry) for entry in body["files"]]
    except (OSError, ValueError, KeyError, TypeError, InvalidInput):
        return None
    return files or None


def _file(entry: Any) -> RecordedFile:
    path = check_file_path(str(entry["path"]))
    size = entry["size"]
    sha256 = str(entry["sha256"])
    if not isinstance(size, int) or size < 0 or not _SHA256.fullmatch(sha256):
        raise ValueError("not a recorded file")
    return RecordedFile(path, size, sha256)


def plain_record(root: Path, model: str, revision: str) -> Path:
    """``ROOT/.weightgate/ORG/NAME@REV.json``: one file per model and revision, no collisions."""
    *org, name = model.split("/")
    return root.joinpath(RECORD_DIR, *org, f"{name}@{revision}.json")
