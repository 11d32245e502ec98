"""`make security`: pip-audit over the dependencies installed in this venv.

Exits 1 when pip-audit finds a known vulnerability or fails unexpectedly. When it cannot
reach its advisory database (PyPI's per-release JSON API) it prints a one-line notice and
exits 0. That covers a network error, and also a registry mirror that answers 404 for
every release: pip-audit then skips every package yet says "No known vulnerabilities found".
Extra arguments (e.g. `--ignore-vuln ID`, each with a comment saying why) go to pip-audit.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

PIP_AUDIT = str(Path(sys.executable).with_name("pip-audit"))
# What pip-audit prints (or the traceback it dies with) when its service is out of reach.
NETWORK_ERRORS = ("requests.exceptions.", "urllib3.exceptions.", "your network may be blocking")
NOT_ON_PYPI = "not found on PyPI"  # the skip reason pip-audit gives for a 404


def notice(reason: str) -> int:
    print(f"pip-audit: NOTICE: advisory database unreachable ({reason}); dependencies NOT audited")
    return 0


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        argv = [PIP_AUDIT, "--progress-spinner", "off", "--skip-editable", "--format", "json"]
        argv += ["--output", str(report), *sys.argv[1:]]
        # S603: a fixed argv, running this venv's own pip-audit.
        run = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        deps = json.loads(report.read_text())["dependencies"] if report.exists() else []

    vulnerable = [dep for dep in deps if dep.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln["fix_versions"]) or "none"
            print(f"pip-audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixed})")
    if vulnerable or run.returncode:
        if not vulnerable and any(sign in run.stderr for sign in NETWORK_ERRORS):
            return notice(run.stderr.strip().splitlines()[-1][:200])
        print(run.stderr or f"pip-audit exited {run.returncode}", file=sys.stderr)
        return 1

    audited = [dep for dep in deps if "skip_reason" not in dep]
    missing = [dep["name"] for dep in deps if NOT_ON_PYPI in dep.get("skip_reason", "")]
    if missing and not audited:
        return notice(f"PyPI answered 404 for all {len(missing)} releases")
    if missing:  # a few packages that are not on PyPI, e.g. built locally
        print(f"pip-audit: NOTICE: not on PyPI, not audited: {', '.join(missing)}")
    print(f"pip-audit: {len(audited)} packages audited, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
