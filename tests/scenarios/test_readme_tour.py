"""The README's tour, run exactly as written, so the README cannot drift from the code.

The commands come from the ``sh`` blocks under "A tour of the CLI". They run
in order, in one bash process, in a scratch directory that stands for the
reader's working directory, with ``HOME`` pointed there too. Only the port
is substituted (8080 becomes a free one). Prepared beforehand is only what
the tour says the reader has: ``./atlas``, a directory of model weights, and
the repository's ``docs/examples``, as in a clone. A command whose trailing
comment says ``exit N`` must exit with N; every other command must exit 0.
"""

from __future__ import annotations

import filecmp
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.api.background import free_port
from gateway.demo import write_synthetic_model

README = Path(__file__).parents[2] / "README.md"
EXAMPLES = README.parent / "docs/examples"
TOUR_HEADING = "## A tour of the CLI"
EXPECTED_EXIT = re.compile(r"\bexit (\d+)\b")


@dataclass(frozen=True)
class TourCommand:
    line: int
    text: str
    expected_exit: int


def _comment_start(text: str) -> int | None:
    """Where an unquoted ``#`` comment begins, as bash would read the line."""
    quote: str | None = None
    escaped = False
    for position, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or text[position - 1].isspace()):
            return position
    return None


def tour_commands(readme: str) -> list[TourCommand]:
    """Every command in the tour's ``sh`` blocks, continuations joined, with its expected exit."""
    section = readme.split(TOUR_HEADING, 1)[1].split("\n## ", 1)[0]
    first_line = readme[: readme.index(TOUR_HEADING)].count("\n") + 1
    commands: list[TourCommand] = []
    in_block = False
    pending: list[str] = []
    pending_line = 0
    for offset, raw in enumerate(section.splitlines()):
        if raw.startswith("```"):
            in_block = raw.strip() == "```sh" if not in_block else False
            continue
        if not in_block:
            continue
        if not pending:
            pending_line = first_line + offset
        cut = _comment_start(raw)
        code = (raw if cut is None else raw[:cut]).rstrip()
        comment = "" if cut is None else raw[cut:]
        if code.endswith("\\"):
            pending.append(code[:-1].rstrip())
            continue
        pending.append(code)
        text = " ".join(part.strip() for part in pending if part.strip())
        pending = []
        if text:
            found = EXPECTED_EXIT.search(comment)
            commands.append(TourCommand(pending_line, text, int(found.group(1)) if found else 0))
    assert not pending, "the tour ends in a line continuation"
    return commands


def tour_script(commands: list[TourCommand], port: int) -> str:
    """One bash script that runs each command and stops at the first unexpected exit status."""
    lines = [
        "set -o pipefail",
        "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT",
    ]
    for command in commands:
        text = command.text.replace("8080", str(port))
        lines += [
            f"echo {shlex.quote(f'$ {text}')} >&2",
            text,
            "status=$?",
            f"if [ $status -ne {command.expected_exit} ]; then",
            f"  echo {shlex.quote(f'README.md:{command.line}: exit ')}$status"
            f"{shlex.quote(f', expected {command.expected_exit}: {command.text}')} >&2",
            "  exit 99",
            "fi",
        ]
    return "\n".join(lines) + "\n"


def test_the_tour_parser_reads_continuations_comments_and_expected_exits() -> None:
    readme = (
        "intro\n## A tour of the CLI\n\n```sh\n# a comment\n"
        "weightgate a --x 'quoted # not a comment' \\\n    --y 2   # exit 3 when denied\n"
        "echo done\n```\n\n```text\nnot run\n```\n## Next\n```sh\nnot in the tour\n```\n"
    )
    commands = tour_commands(readme)
    assert [(c.text, c.expected_exit) for c in commands] == [
        ("weightgate a --x 'quoted # not a comment' --y 2", 3),
        ("echo done", 0),
    ]
    assert commands[0].line == 6


@pytest.fixture
def tour_directory(tmp_path: Path) -> Path:
    """The reader's working directory: their weights, and the examples a clone has."""
    write_synthetic_model(tmp_path / "atlas", shards=2, shard_bytes=1 << 20)
    shutil.copytree(EXAMPLES, tmp_path / "docs/examples")
    return tmp_path


def test_every_readme_tour_command_works_as_written(tour_directory: Path) -> None:
    commands = tour_commands(README.read_text(encoding="utf-8"))
    port = free_port()
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("WEIGHTGATE_")
    }
    environment |= {
        "HOME": str(tour_directory),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}",
        "NO_COLOR": "1",
    }
    result = subprocess.run(
        ["bash", "-c", tour_script(commands, port)],
        cwd=tour_directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-6000:]

    # What the tour fetched is what was published, byte for byte, by each route.
    source = tour_directory / "atlas"
    snapshots = list((tour_directory / ".cache/huggingface/hub").glob("models--*/snapshots/*"))
    assert len(snapshots) == 1
    copies = ["weights", "weights-pq", "weights-via-curl", "weights-pune"]
    for copy in [*(tour_directory / name for name in copies), snapshots[0]]:
        for original in source.iterdir():
            if copy == snapshots[0] and not original.name.endswith(".safetensors"):
                assert not (copy / original.name).exists()
                continue
            assert filecmp.cmp(original, copy / original.name, shallow=False), copy
    # The witness cosigned a checkpoint the gateway then served with its cosignature.
    assert (tour_directory / "seen.txt").is_file()
    assert "cosigned" in result.stdout + result.stderr
