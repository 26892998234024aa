"""dbcluster_watcher's decision (pure): follow, promote, step down or re-copy (assumptions A1, A2).

Inputs are what the node knows at one tick: its own position, the peers that answered on their
watcher endpoints, and the membership read from its own (replicated) database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MASTER = "master"
REPLICA = "replica"


@dataclass(frozen=True)
class Position:
    address: str
    clustered: bool
    role: str | None  # master | replica | None
    sysid: str
    timeline: int
    lsn: int
    rejoin: bool = False

    def rank(self) -> tuple[bool, int, int, bytes]:
        """Sort key: best candidate first (A2; a re-joining former master ranks last)."""
        return (self.rejoin, -self.timeline, -self.lsn, self.address.encode())


@dataclass(frozen=True)
class Decision:
    action: str  # none | follow | promote | step_down | recopy
    target: str | None = None
    reason: str = ""


NONE = Decision("none")


def visible_members(me: Position, peers: list[Position], membership: list[str]) -> list[Position]:
    return [
        p
        for p in peers
        if p.clustered
        and p.sysid == me.sysid
        and p.address in membership
        and p.address != me.address
    ]


def has_majority(me: Position, visible: list[Position], membership: list[str]) -> bool:
    seen = len(visible) + (1 if me.address in membership else 0)
    return seen * 2 > len(membership)


def decide(me: Position, peers: list[Position], membership: list[str]) -> Decision:
    if not me.clustered or not membership:
        return NONE
    visible = visible_members(me, peers, membership)
    majority = has_majority(me, visible, membership)
    masters = sorted((p for p in visible if p.role == MASTER), key=Position.rank)
    seen = len(visible) + 1
    if me.role == MASTER:
        if not majority:
            return Decision(
                "step_down",
                reason=f"sees {seen} of {len(membership)} members: no majority",
            )
        if masters and masters[0].rank() < me.rank():
            return Decision("step_down", reason=f"{masters[0].address} is a more advanced master")
        return NONE
    if masters:
        if me.rejoin:
            return Decision("recopy", masters[0].address, "former master re-joins the elected one")
        return Decision("follow", masters[0].address)
    if not majority:
        return NONE
    candidates = sorted(
        [me, *(p for p in visible if p.role == REPLICA)],
        key=Position.rank,
    )
    if candidates[0].address == me.address:
        return Decision(
            "promote",
            reason=f"no master; sees {seen} of {len(membership)} members; most advanced",
        )
    return NONE


def watch_info(me: Position) -> dict[str, Any]:
    return {
        "address": me.address,
        "clustered": True,
        "role": me.role,
        "sysid": me.sysid,
        "timeline": me.timeline,
        "lsn": me.lsn,
        "rejoin": me.rejoin,
    }


def position_from(info: dict[str, Any]) -> Position:
    return Position(
        address=str(info.get("address", "")),
        clustered=bool(info.get("clustered")),
        role=info.get("role"),
        sysid=str(info.get("sysid", "")),
        timeline=int(info.get("timeline", 0)),
        lsn=int(info.get("lsn", 0)),
        rejoin=bool(info.get("rejoin", False)),
    )
