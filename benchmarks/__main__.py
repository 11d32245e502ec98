"""``python -m benchmarks [decrypt|grants|keyrelease|audit|fetch|screening|all]``: same-run ratios.

``--size-mib N`` sets the model size for the fetch benchmarks.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import audit_log, decryption, fetching, grants, key_release, screening


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=["decrypt", "grants", "keyrelease", "audit", "fetch", "screening", "all"],
    )
    parser.add_argument(
        "--size-mib", type=int, default=1024, help="model size for fetch benchmarks"
    )
    args = parser.parse_args()
    results = []
    if args.which in ("decrypt", "all"):
        results += decryption.run()
    if args.which in ("grants", "all"):
        results += grants.run()
    if args.which in ("keyrelease", "all"):
        results += key_release.run()
    if args.which in ("audit", "all"):
        results += audit_log.run()
    if args.which in ("screening", "all"):
        results += screening.run()
    if args.which in ("fetch", "all"):
        results += fetching.run(args.size_mib << 20)
    for result in results:
        print(result.line())
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
