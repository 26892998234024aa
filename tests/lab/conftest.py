"""Fixtures that start a real cmslab (SSH + PostgreSQL) in a temp dir and always tear it down.

A test module sets `LAB_BASE = "127.0.1x.1"` (its own loopback range, so modules never clash with
each other, a developer's lab on 127.0.10.x or the reconciler's lab tests) and optionally
`LAB_NODES` / `LAB_WORDING`; the `lab` fixture is shared by the module's tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .labkit import Lab, new_lab, running


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    base = getattr(request.module, "LAB_BASE", "127.0.19.1")
    nodes = getattr(request.module, "LAB_NODES", 3)
    wording = getattr(request.module, "LAB_WORDING", "master")
    yield from running(new_lab(base, nodes, wording=wording))
