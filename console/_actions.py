"""Operator actions from the console, on the same path as MQTT acks.

``ack`` / ``escalate`` / ``resolve`` / ``assign`` become an
:class:`alerts.OperatorAction` submitted to the pipeline's :class:`alerts.AlertService`
— the same engine decision, store write, audit entry and publishes as an ack arriving on
``limes/v1/alerts/{id}/ack``.

Durability: in ``limes run`` every console action is a :class:`ConsoleAction` journaled
*before* it is applied (``service.journal.Durable.console``, record kind ``c``), exactly
as an MQTT ack is journaled before its PUBACK: the console answers only after the record
is in Redis and applied, and a restart replays it (:func:`apply_action`) into the same
engine state. Without a journal (embedded demo) :func:`apply_action` runs directly.

A joint-patrol request (CCP) on operator demand has no ``OperatorAction`` yet; until the
alerts package grows one, :func:`request_joint_patrol` builds it here from the engine's
record (same :class:`alerts.CcpRequest` payload and topic as the automatic requests), with
an audit entry (event ``ccp``) written through the engine's own transition and applied
under the alert service's lock, so it is ordered with every other decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec

from alerts import CcpRequest, Decision, OperatorAction, Publish
from alerts.geometry import true_heading_deg

if TYPE_CHECKING:
    from service.runtime import Pipeline

CCP_TOPIC = "limes/v1/ccp/outbox"
Action = Literal["ack", "escalate", "resolve", "assign"]
ACTIONS: tuple[Action, ...] = ("ack", "escalate", "resolve", "assign")
MAX_NOTE = 500

_enc = msgspec.json.Encoder()


class ConsoleAction(msgspec.Struct, kw_only=True, frozen=True):
    """One operator action from the console, as journaled (JSON) and replayed.

    ``action`` is one of :data:`ACTIONS` or ``ccp``; ``velocity`` (grid m/s) only for
    ``ccp`` (the heading of the request).
    """

    action: Literal["ack", "escalate", "resolve", "assign", "ccp"]
    alert_id: str
    who: str
    t: float
    note: str = ""
    unit: str | None = None
    velocity: tuple[float, float] | None = None


ACTION_CODEC = msgspec.json.Decoder(ConsoleAction)


async def apply_action(pipe: Pipeline, act: ConsoleAction) -> Outcome:
    """Apply one console action to the pipeline (live and journal replay alike)."""
    if act.action == "ccp":
        return await request_joint_patrol(
            pipe, alert_id=act.alert_id, who=act.who, t=act.t, note=act.note,
            velocity=act.velocity,
        )  # fmt: skip
    return await perform(
        pipe, alert_id=act.alert_id, action=act.action, who=act.who, t=act.t, note=act.note,
        unit=act.unit,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an action did: ``ok``; the alert's state after it; a refusal reason."""

    ok: bool
    state: str | None = None
    reason: str | None = None
    detail: dict[str, str] | None = None


async def perform(
    pipe: Pipeline,
    *,
    alert_id: str,
    action: Action,
    who: str,
    t: float,
    note: str,
    unit: str | None = None,
) -> Outcome:
    """Submit ``action`` by ``who`` on ``alert_id`` (validated by the caller)."""
    if action == "assign" and (unit is None or unit not in pipe.engine.patrols):
        return Outcome(False, reason=f"unknown unit {unit!r}")
    act = OperatorAction(alert_id=alert_id, action=action, who=who, t=t, why=note, unit=unit)
    d = await pipe.alerts.submit(act)
    rec = pipe.engine.alerts.get(alert_id)
    state = rec.state if rec is not None else None
    if d.rejected is not None:
        return Outcome(False, state=state, reason=d.rejected)
    return Outcome(True, state=state)


async def request_joint_patrol(
    pipe: Pipeline,
    *,
    alert_id: str,
    who: str,
    t: float,
    note: str,
    velocity: tuple[float, float] | None = None,
) -> Outcome:
    """Send a joint-patrol request to the CCP for ``alert_id`` (once per alert).

    ``velocity`` (grid m/s) gives the heading, from the alert's live track when known.
    """
    eng = pipe.engine
    service = pipe.alerts
    async with service._lock:  # ordered with the service's own decisions
        rec = eng.alerts.get(alert_id)
        if rec is None:
            return Outcome(False, reason=f"unknown alert {alert_id}")
        if rec.state == "resolved":
            return Outcome(False, state=rec.state, reason=f"alert {alert_id} is resolved")
        if rec.ccp_request_id is not None:
            return Outcome(
                False,
                state=rec.state,
                reason=f"joint patrol already requested ({rec.ccp_request_id})",
            )
        home = pipe.site.home
        proposed = next(
            (u for u in rec.recommended_units if u in eng.patrols and eng.patrols[u].team == home),
            None,
        )
        vx, vy = velocity if velocity is not None else (0.0, 0.0)
        req = CcpRequest(
            request_id="ccp-" + rec.alert_id.rsplit("-", 1)[-1],
            alert_id=rec.alert_id,
            t=t,
            lat=rec.lat,
            lon=rec.lon,
            group_size=rec.group_size,
            cls=rec.cls,
            heading_deg=true_heading_deg(pipe.site, rec.x, rec.y, vx, vy),
            proposed_unit=proposed,
        )
        rec.ccp_request_id = req.request_id
        d = Decision()
        why = f"joint patrol requested ({req.request_id}): {note}"
        idx = eng._transition(rec, rec.state, t, who, why, "ccp", d, publish=False)
        d.publishes.append(Publish(CCP_TOPIC, _enc.encode(req), 1, idx))
        msgs = [(p.topic, p.payload, p.qos) for p in d.publishes]
        outbox = service.outbox  # staged before the write, as the service's own decisions
        ids = await outbox.stage(msgs) if outbox is not None else []
        applied = await pipe.store.apply(d.ops)
        if applied[idx]:
            for p in d.publishes:
                await pipe.sink.publish(p.topic, p.payload, p.qos)
        elif outbox is not None:
            await outbox.unstage(msgs, ids)
    return Outcome(True, state=rec.state, detail={"request_id": req.request_id})
