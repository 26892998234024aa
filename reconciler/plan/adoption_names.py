"""Adopting a cluster built by hand: what each imported node is called (pure).

``--name ADDR=NAME`` first (ADDR is the node's clustering address or the host it was
reached on), else what the node's MMP `hostname` printed (the name of its prompt,
``<hostname>> ``), else one made from the address (:func:`derived_name`:
``10.48.36.61`` -> ``cms-10-48-36-61``). A hostname that two nodes share, or that is
another node's address, falls back to the address (with a note); names that still
clash, and a ``--name`` no node matches, refuse the import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.common.addresses import normalize_address

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")  # as NodeSpec.name and ClusterSpec.cluster


@dataclass(frozen=True)
class NameChoice:
    name: str
    source: str  # "--name" | "hostname" | "address"


def derived_name(address: str) -> str:
    """A node name made from its address: ``10.48.36.61`` -> ``cms-10-48-36-61``."""
    text = re.sub(r"[^A-Za-z0-9]+", "-", address).strip("-").lower()
    return f"cms-{text}"[:63].rstrip("-")


def choose_names(
    nodes: Sequence[tuple[str, str, str | None]], overrides: Mapping[str, str]
) -> tuple[list[NameChoice], list[str], list[str]]:
    """Names for ``(address, host, hostname)`` of each node: (choices, problems, notes)."""
    wanted = {normalize_address(a): (a, n) for a, n in overrides.items()}
    used: set[str] = set()
    chosen: list[NameChoice] = []
    for address, host, hostname in nodes:
        keys = [normalize_address(address), normalize_address(host)]
        given = next((wanted[k] for k in keys if k in wanted), None)
        shown = (hostname or "").strip()
        if given is not None:
            used.add(normalize_address(given[0]))
            chosen.append(NameChoice(given[1], "--name"))
        elif NAME.match(shown):
            chosen.append(NameChoice(shown, "hostname"))
        else:
            chosen.append(NameChoice(derived_name(address), "address"))
    problems = [
        f"--name {a}={n}: no imported node has the address {a}"
        for k, (a, n) in wanted.items()
        if k not in used
    ]
    endpoints = [
        {normalize_address(address), normalize_address(host)} for address, host, _ in nodes
    ]
    notes: list[str] = []
    first_names = [c.name.lower() for c in chosen]  # before any falls back
    for i, choice in enumerate(chosen):
        others = set().union(*(e for j, e in enumerate(endpoints) if j != i))
        if choice.source == "--name" and normalize_address(choice.name) in others:
            problems.append(
                f"--name {nodes[i][0]}={choice.name}: {choice.name} is another node's address"
            )
        if choice.source != "hostname":
            continue
        shared = first_names.count(choice.name.lower()) > 1
        if shared or normalize_address(choice.name) in others:
            address = nodes[i][0]
            why = "as another node does" if shared else "another node's address"
            notes.append(f"{address} calls itself {choice.name} ({why}): named by its address")
            chosen[i] = NameChoice(derived_name(address), "address")
    lowered = [c.name.lower() for c in chosen]
    problems += [
        f"two nodes would be named {name}: give --name ADDR=NAME for one of them"
        for name in sorted({n for n in lowered if lowered.count(n) > 1})
    ]
    return chosen, problems, notes
