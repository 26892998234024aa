"""The observation of a cluster: one entry per spec node, keyed by node name.

This is both the input of an offline plan (`--observed snapshot.yaml`) and the
output of `reconcile observe`. Pure data; YAML I/O lives in
:mod:`reconciler.observe.snapshot_io`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from reconciler.common.frozen import Frozen
from reconciler.observe.status_model import ClusterStatus


class NodeObservation(Frozen):
    raw_status: str | None = None  # text exactly as the MMP printed it
    status: ClusterStatus | None = None  # parsed raw_status
    files: dict[str, str] | None = None  # SFTP root: file name -> sha256 hex (None = not listed)
    unreachable: str | None = None  # why the node could not be observed
    # The node answered but its status cannot be used (a channel closed without an exit
    # status, a command cut by a timeout, an oversized output): a failed observation of a
    # node that is up, so it holds back every cluster-changing step, unlike `unreachable`.
    unreadable: str | None = None

    @property
    def reachable(self) -> bool:
        return self.unreachable is None and self.unreadable is None and self.status is not None

    @property
    def why_not(self) -> str:
        """Why there is no status to use (for messages)."""
        return self.unreachable or self.unreadable or "no status"


class Observed(Frozen):
    observed_at: datetime | None = None
    nodes: dict[str, NodeObservation] = Field(default_factory=dict)

    def get(self, name: str) -> NodeObservation:
        """A node absent from the snapshot counts as unreachable (never guessed)."""
        return self.nodes.get(name) or NodeObservation(unreachable="not observed")
