"""An issuer's console client in the issuers file: read when sound, refused at start if not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import FixedClock
from gateway.errors import InvalidInput
from gateway.identity.issuers import ConsoleClient, load_issuers_file
from tests.conftest import START

CLIENT = {
    "client_id": "weightgate-console",
    "authorization_endpoint": "https://login.example.com/authorize?tenant=x",
    "token_endpoint": "https://login.example.com/token",
}


def _load(tmp_path: Path, console: Any) -> ConsoleClient | None:
    path = tmp_path / "issuers.json"
    entry = {"issuer": "https://login.example.com", "jwks_file": "jwks.json", "console": console}
    path.write_text(json.dumps([entry]), encoding="utf-8")
    (tmp_path / "jwks.json").write_text('{"keys": []}', encoding="utf-8")
    return load_issuers_file(path, FixedClock(START))[0].console


def test_a_console_client_is_read_with_openid_always_among_its_scopes(tmp_path: Path) -> None:
    client = _load(tmp_path, {**CLIENT, "scopes": ["profile", "email"]})
    assert client == ConsoleClient(
        client_id="weightgate-console",
        authorization_endpoint="https://login.example.com/authorize?tenant=x",
        token_endpoint="https://login.example.com/token",
        scopes=("openid", "profile", "email"),
    )
    assert _load(tmp_path, {**CLIENT, "token_endpoint": "http://127.0.0.1:9/token"}) is not None


@pytest.mark.parametrize(
    ("console", "complaint"),
    [
        ("weightgate-console", "must be an object"),
        ({**CLIENT, "client_secret": "s3cret"}, "unknown console settings"),
        ({**CLIENT, "client_id": ""}, "client_id"),
        ({**CLIENT, "client_id": "x" * 201}, "client_id"),
        ({**CLIENT, "client_id": "bad\nid"}, "client_id"),
        ({**CLIENT, "token_endpoint": "http://login.example.com/token"}, "https"),
        ({**CLIENT, "authorization_endpoint": "javascript:alert(1)"}, "https"),
        ({**CLIENT, "authorization_endpoint": "https://login.example.com/a#b"}, "not a URL"),
        ({**CLIENT, "token_endpoint": "https://login.example.com:port/token"}, "not a URL"),
        ({k: v for k, v in CLIENT.items() if k != "token_endpoint"}, "token_endpoint"),
        ({**CLIENT, "scopes": "openid"}, "scopes"),
        ({**CLIENT, "scopes": ["openid profile"]}, "scopes"),
    ],
)
def test_a_console_client_that_is_not_sound_is_refused_at_start(
    tmp_path: Path, console: Any, complaint: str
) -> None:
    with pytest.raises(InvalidInput, match=complaint):
        _load(tmp_path, console)
