"""The server-side scripts: every mirror write, fenced by the device's lease token.

A script runs atomically on the server: it compares the lease key's value with the writer's
token and writes only if they are equal, so a worker that lost its lease (expired, taken over)
cannot write, however late its command arrives. Names and values reach the scripts only as
``KEYS`` and ``ARGV``, never as source text. Results: ``1`` (or ``{1, ...}``) done, ``-1``
fenced out (another worker holds the lease), ``-3`` no lease (Redis lost it), ``-2`` out of
step (another generation is current).
"""

from __future__ import annotations

import hashlib
from typing import Any

#: Arguments per HSET a script issues: Lua's unpack() has a bounded stack.
CHUNK = 1000

#: The fence: the lease key must hold the writer's token (-1: another token, -3: no lease at
#: all, as after a restart of Redis, until the owner's coordinator claims it again).
_FENCE = """
local function fenced()
  local holder = redis.call('GET', KEYS[1])
  if holder == ARGV[1] then return 0 end
  if holder then return -1 end
  return -3
end
"""

_PUT = """
local function put(key, first, count)
  local last = first + 2 * count - 1
  local i = first
  while i <= last do
    local j = math.min(i + CHUNK - 1, last)
    redis.call('HSET', key, unpack(ARGV, i, j))
    i = j + 1
  end
  return last + 1
end
""".replace("CHUNK", str(CHUNK))

#: Records (see :func:`~katcp_inspect.mirror.schema.pack_records`) into a hash, in order (a
#: later record of a field wins): parsed here, so that the writer sends one argument for a
#: whole batch rather than two per reading.
_PUT_RECORDS = """
local function put_records(key, blob)
  local pos, size, args = 1, #blob, {}
  while pos <= size do
    local name_len, value_len
    name_len, value_len, pos = struct.unpack('<I4I4', blob, pos)
    args[#args + 1] = string.sub(blob, pos, pos + name_len - 1)
    args[#args + 1] = string.sub(blob, pos + name_len, pos + name_len + value_len - 1)
    pos = pos + name_len + value_len
    if #args >= CHUNK then
      redis.call('HSET', key, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('HSET', key, unpack(args)) end
end
""".replace("CHUNK", str(CHUNK))

#: KEYS: lease, state, sensors, requests, readings, stream, devices.
#: ARGV: token, generation, stream maxlen, device name, owner, then the records of the
#: sensors, the requests and the readings, then the state's field pairs.
#: A new generation must exceed the current one (``{-2, current}`` otherwise).
COMMIT = _FENCE + _PUT + _PUT_RECORDS + """
local fence = fenced()
if fence ~= 0 then return {fence, 0} end
local gen = tonumber(ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[2], 'generation') or '0')
if gen <= current then return {-2, current} end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
put_records(KEYS[3], ARGV[6])
put_records(KEYS[4], ARGV[7])
put_records(KEYS[5], ARGV[8])
put(KEYS[2], 9, (#ARGV - 8) / 2)
redis.call('HSET', KEYS[2], 'generation', ARGV[2], 'owner', ARGV[5])
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[3], '*', 'k', 's', 'g', ARGV[2], 'q', seq)
redis.call('SADD', KEYS[7], ARGV[4])
return {1, gen}
"""

#: KEYS: lease, state, readings, stream.
#: ARGV: token, generation, stream maxlen, readings dropped before this entry, the number of
#: stream records, the stream records, then the records of the readings that found the
#: writer's buffer full (the latest of each sensor, newer than the stream's).
FLUSH = _FENCE + _PUT_RECORDS + """
local fence = fenced()
if fence ~= 0 then return fence end
if redis.call('HGET', KEYS[2], 'generation') ~= ARGV[2] then return -2 end
put_records(KEYS[3], ARGV[6])
put_records(KEYS[3], ARGV[7])
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
if tonumber(ARGV[4]) > 0 then redis.call('HINCRBY', KEYS[2], 'dropped', ARGV[4]) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'k', 'r', 'g', ARGV[2], 'q', seq,
           'n', ARGV[5], 'x', ARGV[4], 'd', ARGV[6])
return 1
"""

#: KEYS: lease, state. ARGV: token, then field pairs.
STATUS = _FENCE + _PUT + """
local fence = fenced()
if fence ~= 0 then return fence end
put(KEYS[2], 2, (#ARGV - 1) / 2)
return 1
"""

#: KEYS: lease, state, sensors, requests, readings, stream, devices. ARGV: token, device name.
FORGET = _FENCE + """
local fence = fenced()
if fence ~= 0 then return fence end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('SREM', KEYS[7], ARGV[2])
return 1
"""

#: KEYS: lease keys. ARGV: milliseconds, then each key's token. Per key: 1 renewed, 2 claimed
#: again (the key was gone: Redis restarted or flushed, and nobody took it since), 0 lost.
RENEW = """
local result = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if value == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    result[i] = 1
  elseif not value then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
    result[i] = 2
  else
    result[i] = 0
  end
end
return result
"""

#: KEYS: lease. ARGV: token. 1 released, 0 not ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: KEYS: workers. ARGV: worker id, milliseconds (0: leave). The number of live workers, by
#: the server's clock (workers' clocks may disagree).
HEARTBEAT = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return redis.call('ZCARD', KEYS[1])
"""


class Script:
    """A script and its SHA1, run by EVALSHA (loaded again when the server lost it)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def args(self, keys: list[str], args: list[Any]) -> tuple[Any, ...]:
        """The arguments of ``EVALSHA`` after the SHA."""
        return (len(keys), *keys, *args)


SCRIPTS = {name: Script(source) for name, source in (
    ("commit", COMMIT), ("flush", FLUSH), ("status", STATUS), ("forget", FORGET),
    ("renew", RENEW), ("release", RELEASE), ("heartbeat", HEARTBEAT))}

__all__ = ["CHUNK", "SCRIPTS", "Script"]
