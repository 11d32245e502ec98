"""``weightgate demo --serve``: the story, then a console a reader can sign in to, until Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

WEIGHTGATE = str(Path(sys.executable).with_name("weightgate"))
# However slow the machine, a demo that never gets there is killed, not waited for.
DEMO_DEADLINE_SECONDS = 180


def test_demo_serve_prints_a_console_url_and_a_token_that_signs_in_then_stops_on_ctrl_c(
    env: dict[str, str],
) -> None:
    with subprocess.Popen(
        [WEIGHTGATE, "demo", "--serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as demo:
        watchdog = threading.Timer(DEMO_DEADLINE_SECONDS, demo.kill)
        watchdog.start()
        try:
            _sign_in_then_interrupt(demo)
        finally:
            watchdog.cancel()
            if demo.poll() is None:
                demo.kill()


def _sign_in_then_interrupt(demo: subprocess.Popen[str]) -> None:
    """Read the demo until it serves, sign in with its token, then Ctrl-C it."""
    assert demo.stdout is not None and demo.stderr is not None
    seen: list[str] = []
    url = token = None
    for line in demo.stdout:
        seen.append(line)
        if found := re.match(r"Console: (http://127\.0\.0\.1:\d+/console/)$", line.strip()):
            url = found.group(1)
        if line.startswith("ada: "):
            token = line.removeprefix("ada: ").strip()
        if line.startswith("Serving until Ctrl-C"):
            break
    assert url is not None and token is not None, "".join(seen) + demo.stderr.read()
    assert "demo passed" in "".join(seen)

    with httpx.Client(base_url=url.removesuffix("/console/"), follow_redirects=False) as web:
        form = web.get("/console/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        signed_in = web.post(
            "/console/sign-in/token",
            data={"csrf": csrf.group(1), "token": token, "next": "/console/exemptions"},
        )
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == "/console/exemptions"
        overview = web.get("/console/")
        assert overview.status_code == 200
        assert "ada" in overview.text and "admin, security" in overview.text

    demo.send_signal(signal.SIGINT)
    assert demo.wait(timeout=20) == 0
    rest, errors = demo.communicate(timeout=5)
    assert "stopped" in rest, errors
    assert "Traceback" not in errors


def test_demo_without_serve_says_how_to_keep_serving(env: dict[str, str]) -> None:
    finished = subprocess.run(
        [WEIGHTGATE, "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_DEADLINE_SECONDS,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    last = " ".join(finished.stdout.strip().splitlines()[-3:])
    assert "weightgate demo --serve" in last
