"""Redis key layout of the scaled service.

Every key of a sector carries the hash tag ``{<sector>}``, the same tag as the alert
store's keys (``limes:{S03}:alert:<id>``, :mod:`alerts.store`), so a Redis Cluster puts a
sector's input stream, lease, fencing counter, snapshot *and* alerts on one shard, and a
Lua script can check the fencing token and write an alert atomically::

    limes:{S03}:in        STREAM  sector input: gateway messages, beacons, handovers, steps
    limes:{S03}:lease     STRING  "<worker>:<token>", PX lease_ms (SET NX / renewal)
    limes:{S03}:fence     STRING  fencing counter (INCR on every acquisition)
    limes:{S03}:snap      STRING  sector snapshot (service.snapshot) + stream position
    limes:{S03}:out       STREAM  outgoing QoS 1 messages (alert, tasking, CCP), staged by
                                  the fenced alert write; read by the publishers' group
    limes:{S03}:pub:lease STRING  "<publisher>:<token>": the publisher of the sector's outbox
    limes:{S03}:pub:fence STRING  the publishers' lease counter
    limes:{dev:FO-01}:seen:<digest>  STRING  gateway idempotency key (SET NX PX)
    limes:{scale}:workers ZSET    live workers, score = expiry (ms)
    limes:{scale}:publishers ZSET live publishers, score = expiry (ms)
"""

from __future__ import annotations

from typing import Final

#: the consumer group of the fusion workers on every sector stream
GROUP: Final = "limes-workers"
WORKERS: Final = "limes:{scale}:workers"
#: the consumer group of the alert publishers on every sector outbox
PUB_GROUP: Final = "limes-publishers"
PUBLISHERS: Final = "limes:{scale}:publishers"


def stream_key(sector: str) -> str:
    """``limes:{<sector>}:in``."""
    return f"limes:{{{sector}}}:in"


def lease_key(sector: str) -> str:
    """``limes:{<sector>}:lease``."""
    return f"limes:{{{sector}}}:lease"


def fence_key(sector: str) -> str:
    """``limes:{<sector>}:fence``."""
    return f"limes:{{{sector}}}:fence"


def snapshot_key(sector: str) -> str:
    """``limes:{<sector>}:snap``."""
    return f"limes:{{{sector}}}:snap"


def outbox_key(sector: str) -> str:
    """``limes:{<sector>}:out``."""
    return f"limes:{{{sector}}}:out"


def pub_lease_key(sector: str) -> str:
    """``limes:{<sector>}:pub:lease``."""
    return f"limes:{{{sector}}}:pub:lease"


def pub_fence_key(sector: str) -> str:
    """``limes:{<sector>}:pub:fence``."""
    return f"limes:{{{sector}}}:pub:fence"


def seen_key(device: str, digest: str) -> str:
    """``limes:{dev:<device>}:seen:<digest>`` (spread over shards by device)."""
    return f"limes:{{dev:{device}}}:seen:{digest}"
