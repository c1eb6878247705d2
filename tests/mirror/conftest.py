"""Fixtures of the Redis mirror's tests: each test gets its own redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .redis_server import RedisServer, require_server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(require_server())
    server.start()
    try:
        yield server
    finally:
        server.close()
