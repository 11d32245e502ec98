"""Fixtures for the audit-log drills."""

from __future__ import annotations

import pytest

from gateway.bootstrap import Services
from tests.audit.support import fill


@pytest.fixture
def filled(services: Services) -> Services:
    """The real SQLite-backed log of the ``services`` fixture, holding 30 entries."""
    fill(services)
    return services
