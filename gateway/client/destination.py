"""What is already where a fetch writes, judged before anything is asked for or downloaded.

The output directory, the room on its disk and what each file's target holds
are checked before the grant is requested, so a mistake about them costs no
grant, no quota and no audit entry. Before the grant only a size can be
compared, unless an earlier grant's record names the SHA-256: a size can
prove a file missing or different, never complete, so what it cannot settle
is judged again once the grant names the hashes, before a byte is downloaded.
A verified copy is kept, and a file that differs is replaced only when the
caller says so.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from enum import Enum
from pathlib import Path

from gateway.errors import Conflict, InsufficientSpace, InvalidInput, WeightgateError

PART_SUFFIX = ".weightgate-part"


class Found(Enum):
    NOTHING = "nothing"
    GRANTED_BYTES = "granted bytes"  # the size and SHA-256 the grant promised
    OTHER_BYTES = "other bytes"


def check_output_dir(directory: Path) -> None:
    """Refuse an output that is a file, lies below one, dangles, or cannot be written."""
    if directory.is_symlink() and not directory.exists():
        raise InvalidInput(
            f"{directory} is a symlink to {directory.readlink()}, which does not exist"
        )
    nearest = nearest_existing(directory)
    if not nearest.is_dir():
        if nearest == directory:
            raise InvalidInput(f"{directory} is not a directory: give a directory to write into")
        raise InvalidInput(f"{nearest} is not a directory, so {directory} cannot be made")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise InvalidInput(f"cannot write into {nearest}")


def inside(root: Path, target: Path) -> Path:
    """``target``, unless a symlink on the way to it (or it) leads out of ``root``.

    Granted paths are checked relative paths, so only a symlink already on
    disk can lead a write elsewhere; following it could overwrite any file
    the user can write.
    """
    if root.resolve() in target.resolve().parents:
        return target
    if target.is_symlink():
        raise InvalidInput(
            f"{target} is a symlink to {target.readlink()}, outside {root}: "
            "remove it or choose another directory"
        )
    raise InvalidInput(f"{target} leads outside {root} through a symlinked directory")


def find(target: Path, size: int, sha256: str) -> Found:
    """What is at ``target`` now; reads the whole file when its size is the granted one."""
    found = find_by_size(target, size)
    if found is not None:
        return found
    try:
        with target.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise InvalidInput(f"cannot read {target}: {exc.strerror}") from None
    return Found.GRANTED_BYTES if digest == sha256 else Found.OTHER_BYTES


def find_by_size(target: Path, size: int) -> Found | None:
    """What is at ``target`` as far as its size tells; None when only a hash can."""
    try:
        status = target.stat()
    except FileNotFoundError:
        # Nothing, or a dangling symlink that the verified file will replace.
        return Found.OTHER_BYTES if target.is_symlink() else Found.NOTHING
    except NotADirectoryError:
        raise InvalidInput(
            f"a file is in the way of {target}: it needs a directory there"
        ) from None
    if not stat.S_ISREG(status.st_mode):
        raise InvalidInput(f"{target} exists and is not a regular file; move it away")
    return Found.OTHER_BYTES if status.st_size != size else None


def partial_of(target: Path) -> Path:
    """Where a file is written until it verifies, beside its target."""
    return target.with_name(target.name + PART_SUFFIX)


def differing(targets: list[Path]) -> Conflict:
    """Files that exist and differ, found before the grant or after: kept without ``--force``."""
    named = ", ".join(str(p) for p in targets[:3]) + (", ..." if len(targets) > 3 else "")
    return Conflict(
        f"{len(targets)} file(s) already exist and differ from the published ones "
        f"({named}); nothing was downloaded: --force replaces them"
    )


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (a dangling symlink counts as existing)."""
    while not path.exists() and not path.is_symlink() and path != path.parent:
        path = path.parent
    return path


def allocated(path: Path) -> int:
    """Bytes already on disk for ``path``: a partial file is sparse where still unwritten."""
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0


def local_failure(exc: OSError) -> WeightgateError:
    """An error writing or reading the output, as a one-line domain error."""
    where = exc.filename or "the output"
    if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
        return InsufficientSpace(
            f"the disk filled up writing {where}; free some space and run the same fetch "
            "again: what was verified is kept"
        )
    return InvalidInput(f"cannot write {where}: {exc.strerror or exc}")
