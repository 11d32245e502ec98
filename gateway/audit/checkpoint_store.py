"""Signed checkpoints on disk: one file per tree size the gateway signed, plus cosignatures.

Files are an anchor outside the database: an operator who rewrites the
database cannot also produce a checkpoint signed by the audit key, and a
witness's cosignature is a second key in another trust domain.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import checkpoint


class CheckpointStore:
    def __init__(self, directory: Path, origin: str, signer: Ed25519PrivateKey) -> None:
        self._dir = directory
        self.origin = origin
        self._signer = signer

    def publish(self, size: int, root: bytes) -> str:
        note = checkpoint.sign(
            checkpoint.Checkpoint(self.origin, size, root), self.origin, self._signer
        )
        self._write(self._dir / f"{size:012d}.txt", note)
        return note

    def _write(self, target: Path, text: str) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)

    def _files(self) -> list[Path]:
        return sorted(self._dir.glob("*.txt")) if self._dir.is_dir() else []

    def latest(self) -> str | None:
        files = self._files()
        return files[-1].read_text(encoding="utf-8") if files else None

    def notes(self) -> list[str]:
        return [path.read_text(encoding="utf-8") for path in self._files()]

    def verified_latest(self) -> checkpoint.Checkpoint | None:
        note = self.latest()
        return (
            None
            if note is None
            else checkpoint.verify(note, self.origin, self._signer.public_key())
        )

    def note_at(self, size: int) -> str | None:
        path = self._dir / f"{size:012d}.txt"
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def add_cosignature(self, size: int, line: str) -> str:
        """Keep a witness's (already verified) cosignature with the checkpoint it signs."""
        path = self._dir / f"{size:012d}.txt"
        note = checkpoint.add_signature(path.read_text(encoding="utf-8"), line)
        self._write(path, note)
        return note
