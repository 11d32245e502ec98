"""The client's reading of ``--include``/``--exclude`` is the gateway's, for any paths and globs.

If the two ever differed, the client would judge the disk against other
files than the grant covers; the grant would then be refused as an
integrity failure after it was issued. The gateway's own selection is
called here on a stand-in catalog that holds only the paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from gateway.client.listing import selected
from gateway.errors import NotFound
from gateway.service import GrantRequest, GrantService

_PART = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,8}", fullmatch=True)
_PATHS = st.lists(st.lists(_PART, min_size=1, max_size=3).map("/".join), min_size=1, unique=True)
_GLOBS = st.lists(st.text(alphabet="*?[]!-/._aAbB0", max_size=8), max_size=3).map(tuple)


@dataclass(frozen=True)
class _Row:
    path: str


class _Catalog:
    def __init__(self, paths: list[str]) -> None:
        self._rows = [_Row(p) for p in sorted(paths)]

    def files(self, _model: str, _revision: str) -> list[_Row]:
        return self._rows


@given(paths=_PATHS, include=_GLOBS, exclude=_GLOBS)
def test_client_selects_exactly_what_the_gateway_grants(
    paths: list[str], include: tuple[str, ...], exclude: tuple[str, ...]
) -> None:
    service = GrantService.__new__(GrantService)
    service._catalog = _Catalog(paths)  # type: ignore[assignment]
    request = GrantRequest("m", "r", None, "key", include=include, exclude=exclude)
    mine = selected(sorted(paths), include, exclude)
    try:
        granted = [row.path for row in service._select_files("m", "r", request)]
    except NotFound:
        granted = []
    assert mine == granted
