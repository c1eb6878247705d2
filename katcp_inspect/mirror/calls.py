"""Running the mirror's scripts: by SHA (``EVALSHA``), loading them when the server has lost
them (a restarted Redis has an empty script cache)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from .scripts import SCRIPTS

if TYPE_CHECKING:
    from redis.asyncio import Redis


def queue(pipe: Any, name: str, keys: list[str], args: list[Any]) -> None:
    """Queue script ``name`` on pipeline ``pipe``."""
    script = SCRIPTS[name]
    pipe.evalsha(script.sha, *script.args(keys, args))


async def load_scripts(redis: Redis) -> None:
    for script in SCRIPTS.values():
        await redis.script_load(script.source)


async def call(redis: Redis, name: str, keys: list[str], args: list[Any]) -> Any:
    """Run script ``name`` now, loading the scripts first if the server lacks them."""
    script = SCRIPTS[name]
    try:
        return await redis.evalsha(script.sha, *script.args(keys, args))
    except NoScriptError:
        await load_scripts(redis)
        return await redis.evalsha(script.sha, *script.args(keys, args))


async def execute(redis: Redis, pipe: Any) -> list[Any]:
    """Execute ``pipe`` (raising its first error); if the server lacked a script, the scripts
    are loaded before the error is raised, so the next attempt finds them."""
    try:
        return list(await pipe.execute())
    except NoScriptError:
        await load_scripts(redis)
        raise


__all__ = ["call", "execute", "load_scripts", "queue"]
