"""The executor's tunables: poll pacing, settle time, the action timeout, failed polls,
progress lines, and where backups go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExecutorOptions:
    poll_interval: float = 0.5  # the longest wait between two polls (they start at 0.05 s)
    settle_seconds: float = 30.0
    action_timeout: float | None = None  # default: policy.action_timeout_seconds
    # polls in a row that may fail (the node does not answer) while an asynchronous command
    # runs, before the step fails instead of waiting for action_timeout
    max_failed_polls: int = 5
    # the longest a running asynchronous command goes without a progress line (elapsed,
    # node, `Last command`), like Terraform's "Still creating... [10s elapsed]"
    progress_every: float = 10.0
    # where backup steps put the files they download (<dir>/<cluster>/<name>/<node>/);
    # None: a backup step fails (no plan with a backup runs without somewhere to keep it)
    backup_dir: Path | None = None
