"""Decryption throughput against ``openssl speed -evp aes-256-gcm`` at 16 KiB, same machine."""

from __future__ import annotations

import io
import os
import re
import subprocess
from multiprocessing import get_context

from benchmarks.common import Result, timed
from gateway.crypto.fileformat import HEADER_SIZE, EncryptingReader, RangeDecryptor, file_context

KEY = bytes(range(32))
CONTEXT = file_context(model="bench/m", revision="r1", path="w.bin", file_version="v1")


def openssl_bytes_per_second(seconds: int = 3) -> float:
    output = subprocess.run(
        ["openssl", "speed", "-evp", "aes-256-gcm", "-bytes", "16384", "-seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"^AES-256-GCM\s+([\d.]+)k", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"cannot read openssl's figure from:\n{output}")
    return float(match.group(1)) * 1000


def _sealed(size: int) -> tuple[bytes, bytes]:
    reader = EncryptingReader(KEY, CONTEXT, io.BytesIO(os.urandom(size)))
    sealed = reader.read()
    return sealed, reader.result().header


def _decrypt_all(size: int) -> float:
    sealed, header = _sealed(size)
    decryptor = RangeDecryptor(KEY, CONTEXT, header, size)

    def work() -> int:
        return sum(len(c) for c in decryptor.decrypt_chunks(0, memoryview(sealed)[HEADER_SIZE:]))

    seconds, handled = timed(work)
    return handled / seconds


def run(size: int = 512 << 20) -> list[Result]:
    baseline = openssl_bytes_per_second()
    one = _decrypt_all(size)
    with get_context("spawn").Pool(2) as pool:
        # Each process decrypts its own file; wall time covers both at once.
        two_rates = pool.map(_decrypt_all, [size, size])
    two = sum(two_rates)
    return [
        Result(
            "decryption, one core / openssl",
            one / baseline,
            "x",
            ">= 0.8",
            one / baseline >= 0.8,
            f"{one / 1e9:.2f} GB/s vs {baseline / 1e9:.2f} GB/s",
        ),
        Result(
            "decryption, two processes / one",
            two / one,
            "x",
            "scales (> 1.6)",
            two / one > 1.6,
            f"{two / 1e9:.2f} GB/s",
        ),
    ]
