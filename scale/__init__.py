"""Scale-out by sector on existing engines: MQTT shared subscriptions, Redis Streams
consumer groups, Redis (Cluster) leases with fencing tokens. See ``docs/scaling.md``.

Roles (separate processes; ``limes run`` stays the single-process default):

* **gateway** (:mod:`scale.gateway`): stateless; shared subscription
  ``$share/limes/limes/v1/...``, validation + de-duplication (``drivers.Ingest``, then an
  idempotency key in Redis across gateways), appends each message to the stream of every
  sector its measurements fall in (sector +- overlap margin).
* **worker** (:mod:`scale.worker`): owns sectors by leases (``SET NX PX`` + renewal, a
  fencing token from ``INCR`` checked by every write), one :class:`scale.sector.SectorPipeline`
  per owned sector fed by ``XREADGROUP`` on the sector stream, snapshots per sector,
  ``XAUTOCLAIM`` on takeover. The fenced alert write stages the write's outgoing messages
  (alert, tasking, CCP) in the sector outbox ``limes:{S}:out`` in the same Lua script;
  workers publish only track updates (QoS 0).
* **publisher** (:mod:`scale.publisher`): owns sector outboxes by lease, sends their
  entries on MQTT in staged order, ``XACK`` + ``XDEL`` after the PUBACK, ``XAUTOCLAIM``
  of a previous owner's pending entries (at-least-once).
"""

from scale.keys import GROUP, fence_key, lease_key, snapshot_key, stream_key
from scale.routing import Router
from scale.sector import SectorDurable, SectorPipeline

__all__ = [
    "GROUP",
    "Router",
    "SectorDurable",
    "SectorPipeline",
    "fence_key",
    "lease_key",
    "snapshot_key",
    "stream_key",
]
