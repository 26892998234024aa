"""The state directory: where apply and watch keep the lock, the audit log and the journal.

By default it is ``.reconcile/`` next to the spec, so two runs for one spec (an apply
and a watch, on one admin host) find each other's lock. ``--state-dir`` overrides it.
"""

from __future__ import annotations

from pathlib import Path

STATE_DIR_NAME = ".reconcile"


def default_state_dir(spec_dir: Path) -> Path:
    """The state directory for a spec in ``spec_dir`` when none is given."""
    return spec_dir / STATE_DIR_NAME
