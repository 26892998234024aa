"""A certificate or key file the spec names, as read from disk for planning and upload."""

from __future__ import annotations

from reconciler.common.frozen import Frozen


class LocalFile(Frozen):
    """A certificate/key file named in the spec, read by the caller (the planner does no I/O)."""

    spec_path: str  # the path as written in the spec (key of the planner's local_files map)
    local_path: str  # absolute path
    remote_name: str  # bare file name used on the MMP (basename of the path)
    sha256: str
