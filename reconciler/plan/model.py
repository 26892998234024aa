"""The plan: ordered, frozen steps produced by :func:`reconciler.plan.planner.plan`.

Each step carries the observed facts it was planned against (compare-and-set:
the executor re-reads them before acting and refuses with the facts that
changed), the exact MMP command, a human reason and whether it is destructive.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from reconciler.common.frozen import Frozen

PLAN_FORMAT_VERSION = 1


class Action(StrEnum):
    UPLOAD = "upload"
    LOCALNODE = "localnode"
    CERTS = "certs"
    INITIALIZE = "initialize"
    JOIN = "join"
    CONNECT = "connect"
    REMOVE = "remove"
    CLEAR_ERROR = "clear_error"
    UPGRADE_SCHEMA = "upgrade_schema"
    BACKUP = "backup"  # `backup snapshot <name>`, then the files are downloaded


# Actions the MMP runs asynchronously: the executor polls `status` until
# `Last command` shows the result.
ASYNC_ACTIONS = frozenset({Action.INITIALIZE, Action.JOIN, Action.UPGRADE_SCHEMA, Action.REMOVE})


class Fact(Frozen):
    """One observed fact a step depends on, e.g. (cms-lon-1, "role", "replica").

    Keys and how they are computed from an observation: :mod:`reconciler.plan.facts`.
    """

    node: str
    key: str
    value: str | None

    def describe(self) -> str:
        return f"{self.node}.{self.key} = {self.value!r}"


class Upload(Frozen):
    local_path: str  # absolute path of the local file
    remote_name: str  # bare file name in the MMP's SFTP root
    sha256: str


class Step(Frozen):
    id: str  # "s01", "s02", ... in plan order
    node: str
    action: Action
    command: str | None  # exact MMP command line; None for uploads
    reason: str
    destructive: bool = False
    procedure: str | None = None  # e.g. "master-move", "cert-rotation", "schema-repair"
    depends_on: tuple[Fact, ...] = ()
    expect: str = ""  # human description of the expected outcome
    upload: Upload | None = None
    confirm: bool = False  # the MMP asks for an upper-case `Y` on stdin
    backup: str | None = None  # the backup's name (`backup snapshot <name>`)


class Blocked(Frozen):
    node: str | None
    reason: str


class Plan(Frozen):
    format_version: int = PLAN_FORMAT_VERSION
    cluster: str
    steps: tuple[Step, ...] = ()
    drift: tuple[str, ...] = ()  # human-readable differences between spec and observation
    warnings: tuple[str, ...] = ()
    blocked: tuple[Blocked, ...] = ()  # what could not be planned, and why
    spec_digest: str | None = Field(default=None, description="sha256 of the spec's content")
    revision: str | None = Field(
        default=None,
        description="what the plan was made from: \"3f2a9c1 'add cms-fra-2'\" or "
        "\"revision: working tree[ at 3f2a9c1 '...'][ (modified)]\"",
    )
    revision_sha: str | None = Field(default=None, description="the commit's full sha (git)")

    @property
    def changes_present(self) -> bool:
        return bool(self.steps)
