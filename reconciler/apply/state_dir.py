"""The state directory: where apply and watch keep the lock, the audit log, the journal and
the backups taken before risky steps (``backups/``).

One rule for both commands: ``--state-dir``, else ``$RECONCILE_STATE_DIR``, else
``.reconcile/`` next to the spec, so an apply and a watch for one spec on one admin host
always find each other's lock. It is created 0700 and everything in it is 0600
(:mod:`reconciler.common.private_files`).
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.common.errors import ReconcilerError
from reconciler.common.private_files import private_dir

STATE_DIR_NAME = ".reconcile"
STATE_DIR_ENV = "RECONCILE_STATE_DIR"
BACKUPS_DIR_NAME = "backups"


def backups_dir(state_dir: Path) -> Path:
    """Where backup steps keep the files they download: ``<state dir>/backups``."""
    return state_dir / BACKUPS_DIR_NAME


def default_state_dir(spec_dir: Path) -> Path:
    """The state directory for a spec in ``spec_dir`` when none is given."""
    return spec_dir / STATE_DIR_NAME


def configured_state_dir(given: Path | None) -> Path | None:
    """``--state-dir``, else ``$RECONCILE_STATE_DIR``; None: next to each spec."""
    if given is not None:
        return given
    env = os.environ.get(STATE_DIR_ENV)
    return Path(env) if env else None


def prepare_state_dir(path: Path) -> Path:
    """Create (0700) or narrow the state directory before anything is done; a clear error
    naming it when it cannot be."""
    try:
        return private_dir(path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ReconcilerError(f"state directory {path} (--state-dir): {reason}") from None
