"""The read model's Redis layout, and the one Lua script that writes it.

Keys (``<prefix>`` = Settings.topic_prefix)::

    <prefix>:tally:<submission_id>   hash: counts (JSON), total, decision, version, rules_version
    <prefix>:tallies                 pub/sub channel: one JSON message per changed tally
    <prefix>:readmodel:offsets       hash: "<partition>" -> next offset of the tallies topic
    <prefix>:readmodel:ready         the marker: present once the model is complete

Every write is one ``EVALSHA`` of :data:`APPLY_LUA`, which Redis runs
atomically: per tally a compare-and-set on ``version`` (a hash is only
replaced by a strictly newer version), a PUBLISH for each replacement, and
the tallies-topic offsets the batch reaches. Data and offsets therefore never
disagree, even if the sink dies between two batches or Redis saves a
snapshot mid-stream. The script refuses to run (returns -1) when the marker
is gone, which is how a flushed or restarted-empty Redis is noticed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

from models import Tally

__all__ = ["APPLY_LUA", "MarkerMissing", "ReadModelStore", "acl_rules", "announcement"]


#: Commands any client's connection needs (redis-py: AUTH or HELLO, PING for health).
_CONNECTION = "+auth +hello +ping"
#: Exactly what each role runs. The sink: the reads of ReadModelStore (ready, offsets,
#: get), EVALSHA of APPLY_LUA (SCRIPT LOAD after a NOSCRIPT) and the commands the
#: script itself calls, which Redis checks against the same rules. The reader (the
#: gateway, ``tally show``): those reads and SUBSCRIBE on the prefix's channel.
_ROLE_COMMANDS = {
    "sink": "+exists +hgetall +evalsha +script|load +hget +hset +set +publish",
    "reader": "+exists +hgetall +subscribe +unsubscribe",
}


def acl_rules(prefix: str) -> dict[str, str]:
    """Redis ACL rules (``ACL SETUSER <user> on ><password> <rules>``) per role, for one
    prefix's read model: an allow-list of the commands the role runs, on the prefix's
    keys and channel only.

    Nothing that reaches past the prefix: no SELECT, COPY ... DB or MOVE (key patterns
    hold in every database), no SCAN, KEYS, RANDOMKEY or DBSIZE (they list or count
    other prefixes' keys), no FUNCTION or SCRIPT FLUSH (server-wide), no FLUSH*. An ACL
    user therefore uses database 0 (docs/security.md)."""
    scope = f"resetkeys resetchannels ~{prefix}:* &{prefix}:* -@all {_CONNECTION}"
    return {role: f"{scope} {commands}" for role, commands in _ROLE_COMMANDS.items()}


APPLY_LUA = """
-- KEYS[1] marker, KEYS[2] offsets hash, KEYS[3..] one tally hash per tally
-- ARGV[1] channel, ARGV[2] require marker, ARGV[3] publish, ARGV[4] set marker,
-- ARGV[5] marker value, ARGV[6] number of offset pairs, then the pairs,
-- then 6 values per tally: version, counts, total, decision, rules_version, announcement
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local noff = tonumber(ARGV[6])
local base = 7 + 2 * noff
local changed = 0
for i = 3, #KEYS do
  local j = base + (i - 3) * 6
  local cur = redis.call('HGET', KEYS[i], 'version')
  if (not cur) or tonumber(cur) < tonumber(ARGV[j]) then
    redis.call('HSET', KEYS[i], 'version', ARGV[j], 'counts', ARGV[j + 1], 'total', ARGV[j + 2],
               'decision', ARGV[j + 3], 'rules_version', ARGV[j + 4])
    if ARGV[3] == '1' then
      redis.call('PUBLISH', ARGV[1], ARGV[j + 5])
    end
    changed = changed + 1
  end
end
for k = 0, noff - 1 do
  redis.call('HSET', KEYS[2], ARGV[7 + 2 * k], ARGV[8 + 2 * k])
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], ARGV[5])
end
return changed
"""


class MarkerMissing(Exception):
    """Redis lost the read model (flushed, or restarted empty): rebuild it."""


def announcement(t: Tally) -> str:
    """The JSON published on ``<prefix>:tallies`` when a tally changes."""
    return json.dumps(
        {
            "type": "tally",
            "submission_id": t.submission_id,
            "counts": t.counts.model_dump(mode="json"),
            "total": t.total,
            "decision": t.decision.value,
            "version": t.version,
            "rules_version": t.rules_version,
        },
        separators=(",", ":"),
    )


class ReadModelStore:
    """Reads and writes one prefix's read model."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.marker = f"{prefix}:readmodel:ready"
        self.offsets_key = f"{prefix}:readmodel:offsets"
        self.channel = f"{prefix}:tallies"
        self._script = redis.register_script(APPLY_LUA)

    def key(self, submission_id: str) -> str:
        return f"{self.prefix}:tally:{submission_id}"

    async def ready(self) -> bool:
        return bool(await self.redis.exists(self.marker))

    async def offsets(self) -> dict[int, int]:
        raw = await self.redis.hgetall(self.offsets_key)
        return {int(k): int(v) for k, v in raw.items()}

    async def apply(
        self,
        tallies: Iterable[Tally],
        offsets: Mapping[int, int],
        *,
        publish: bool = True,
        require_marker: bool = True,
        set_marker: bool = False,
        marker_value: str = "1",
    ) -> int:
        """Compare-and-set each tally by version and store the offsets, atomically.

        Returns how many hashes changed; raises MarkerMissing when the marker is
        required and absent (nothing was written then).
        """
        tallies = list(tallies)
        keys = [self.marker, self.offsets_key, *(self.key(t.submission_id) for t in tallies)]
        args: list[str | int] = [
            self.channel,
            int(require_marker),
            int(publish),
            int(set_marker),
            marker_value,
            len(offsets),
        ]
        for partition, nxt in sorted(offsets.items()):
            args += [str(partition), str(nxt)]
        for t in tallies:
            args += [
                t.version,
                json.dumps(t.counts.model_dump(mode="json"), separators=(",", ":")),
                t.total,
                t.decision.value,
                t.rules_version,
                announcement(t),
            ]
        changed = int(await self._script(keys=keys, args=args))
        if changed < 0:
            raise MarkerMissing(self.marker)
        return changed

    async def get(self, submission_id: str) -> dict[str, object] | None:
        """One tally as stored (counts decoded), or None."""
        raw = await self.redis.hgetall(self.key(submission_id))
        if not raw:
            return None
        out: dict[str, object] = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        out["counts"] = json.loads(str(out["counts"]))
        out["total"] = int(str(out["total"]))
        out["version"] = int(str(out["version"]))
        return out
