"""Where fetched files land: a plain directory, or a Hugging Face cache.

The cache layout is the one ``huggingface_hub`` reads offline:
``models--ORG--NAME/blobs/<sha256>``, ``snapshots/<commit>/<path>`` as a
relative symlink to the blob, and ``refs/<revision>`` naming the commit. Our
revisions are names, not commits, so the commit is a stable hash of the model
and revision.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

from gateway.errors import IntegrityError


class Layout(Protocol):
    def target(self, path: str, sha256: str) -> Path:
        """Where the verified file is renamed to."""
        ...

    def finish(self, path: str, sha256: str) -> Path:
        """Make the file visible under its name; returns that path."""
        ...


class PlainLayout:
    def __init__(self, root: Path) -> None:
        self._root = root

    def target(self, path: str, sha256: str) -> Path:  # noqa: ARG002 - same for every file
        target = self._root / path
        if self._root.resolve() not in target.resolve().parents:
            raise IntegrityError(f"the grant names a file outside the output directory: {path}")
        return target

    def finish(self, path: str, sha256: str) -> Path:
        return self.target(path, sha256)


def snapshot_commit(model: str, revision: str) -> str:
    return hashlib.sha1(
        f"weightgate\x00{model}\x00{revision}".encode(), usedforsecurity=False
    ).hexdigest()


class HuggingFaceLayout:
    def __init__(self, cache_dir: Path, model: str, revision: str) -> None:
        self._repo = cache_dir / ("models--" + model.replace("/", "--"))
        self._revision = revision
        self._commit = snapshot_commit(model, revision)

    def target(self, path: str, sha256: str) -> Path:  # noqa: ARG002 - blobs are by content
        return self._repo / "blobs" / sha256

    def finish(self, path: str, sha256: str) -> Path:
        link = self._repo / "snapshots" / self._commit / path
        if (self._repo / "snapshots").resolve() not in link.resolve().parents:
            raise IntegrityError(f"the grant names a file outside the snapshot: {path}")
        link.parent.mkdir(parents=True, exist_ok=True)
        blob = self._repo / "blobs" / sha256
        relative = os.path.relpath(blob, link.parent)
        temporary = link.with_name(link.name + ".weightgate-link")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(relative)
        temporary.replace(link)
        refs = self._repo / "refs"
        refs.mkdir(parents=True, exist_ok=True)
        (refs / self._revision).write_text(self._commit, encoding="utf-8")
        (refs / "main").write_text(self._commit, encoding="utf-8")
        return link
