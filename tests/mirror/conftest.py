"""Fixtures of the Redis mirror's tests: each test gets its own redis-server."""

from .redis_server import redis_server

__all__ = ["redis_server"]
