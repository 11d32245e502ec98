"""A serving process runs its synchronous handlers on a few threads, not anyio's forty."""

from __future__ import annotations

import anyio
import anyio.to_thread

from gateway.api.app import REQUEST_THREADS, create_app
from gateway.bootstrap import Services


def test_a_serving_process_bounds_its_request_threads(services: Services) -> None:
    app = create_app(services, owns_services=True)

    async def tokens_while_serving() -> float:
        async with app.router.lifespan_context(app):
            return anyio.to_thread.current_default_thread_limiter().total_tokens

    assert anyio.run(tokens_while_serving) == REQUEST_THREADS < 40
