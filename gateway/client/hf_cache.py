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

from gateway.client.destination import inside
from gateway.client.fetch_record import RECORD_DIR, plain_record
from gateway.errors import InvalidInput


class Layout(Protocol):
    @property
    def names_by_content(self) -> bool:
        """Whether a target's name is its SHA-256, so bytes found there that differ are broken."""
        ...

    def target(self, path: str, sha256: str) -> Path:
        """Where the verified file is renamed to; never through a symlink leading elsewhere."""
        ...

    def place(self, path: str) -> Path | None:
        """Where the file goes when only its path is known: None when its name is its content."""
        ...

    def finish(self, path: str, sha256: str) -> Path:
        """Make the file visible under its name; returns that path."""
        ...

    def record(self, model: str, revision: str) -> Path:
        """Where the list of files fetched for ``model@revision`` is kept (``fetch_record``)."""
        ...


class PlainLayout:
    names_by_content = False

    def __init__(self, root: Path) -> None:
        self._root = root

    def target(self, path: str, sha256: str) -> Path:  # noqa: ARG002 - same for every file
        return inside(self._root, self._root / path)

    def place(self, path: str) -> Path:
        return inside(self._root, self._root / path)

    def finish(self, path: str, sha256: str) -> Path:
        return self.target(path, sha256)

    def record(self, model: str, revision: str) -> Path:
        return plain_record(self._root, model, revision)


def snapshot_commit(model: str, revision: str) -> str:
    return hashlib.sha1(
        f"weightgate\x00{model}\x00{revision}".encode(), usedforsecurity=False
    ).hexdigest()


class HuggingFaceLayout:
    names_by_content = True

    def __init__(self, cache_dir: Path, model: str, revision: str) -> None:
        self._cache = cache_dir
        self._repo = cache_dir / ("models--" + model.replace("/", "--"))
        self._revision = revision
        self._commit = snapshot_commit(model, revision)

    def target(self, path: str, sha256: str) -> Path:  # noqa: ARG002 - blobs are by content
        return inside(self._cache, self._repo / "blobs" / sha256)

    def place(self, path: str) -> None:  # noqa: ARG002 - blobs are named by content
        return None

    def finish(self, path: str, sha256: str) -> Path:
        link = self._repo / "snapshots" / self._commit / path
        # The link itself may exist from an earlier fetch and point at its blob,
        # outside snapshots/: only the directories on the way must stay inside.
        if self._cache.resolve() not in link.parent.resolve().parents:
            raise InvalidInput(f"{link.parent} leads outside {self._cache} through a symlink")
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

    def record(self, model: str, revision: str) -> Path:  # noqa: ARG002 - bound to one model
        # Inside the repository folder, which huggingface_hub's cache scan
        # does not look into beyond blobs/, refs/ and snapshots/.
        return self._repo / RECORD_DIR / f"{revision}.json"
