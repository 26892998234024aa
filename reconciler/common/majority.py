"""The majority rule (A1 in docs/assumptions.md): the one definition every stage uses.

A cluster has a master only while more than half of its members are connected to each
other; with half or fewer, no side elects one and the database is read-only. The planner
counts against the deduplicated membership; the simulation against its model's members.
"""

from __future__ import annotations


def has_majority(connected: int, members: int) -> bool:
    """More than half of ``members`` are ``connected``."""
    return 2 * connected > members


def majority_of(members: int) -> int:
    """The fewest connected members that are a majority of ``members``."""
    return members // 2 + 1
