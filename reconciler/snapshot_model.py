"""The observation of a cluster: one entry per spec node, keyed by node name.

This is both the input of an offline plan (`--observed snapshot.yaml`) and the
output of `reconcile observe`. Pure data; YAML I/O lives in
:mod:`reconciler.snapshot_io`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from reconciler.status_model import ClusterStatus, Frozen


class NodeObservation(Frozen):
    raw_status: str | None = None  # text exactly as the MMP printed it
    status: ClusterStatus | None = None  # parsed raw_status
    files: dict[str, str] | None = None  # SFTP root: file name -> sha256 hex (None = not listed)
    unreachable: str | None = None  # why the node could not be observed

    @property
    def reachable(self) -> bool:
        return self.unreachable is None and self.status is not None


class Observed(Frozen):
    observed_at: datetime | None = None
    nodes: dict[str, NodeObservation] = Field(default_factory=dict)

    def get(self, name: str) -> NodeObservation:
        """A node absent from the snapshot counts as unreachable (never guessed)."""
        return self.nodes.get(name) or NodeObservation(unreachable="not observed")
