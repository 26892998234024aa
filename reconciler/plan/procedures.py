"""The named multi-step procedures: their names, and what in a status shows that one is due.

Pure. A step that belongs to a procedure carries its name in ``Step.procedure``: the plan
shows it, and the watch loop holds every master-move step for a maintenance window. Where
each procedure is decided and written:

* ``REJOIN`` — rotation of a clustered node's interface or certificates (`remove`,
  [uploads], [`localnode`], [`certs`], `join`/`connect`): :mod:`reconciler.plan.rotation`;
  a node that shows it left by a successful `remove` (:func:`left_by_remove`) rejoins
  under this name in the joins phase (:mod:`reconciler.plan.forming`);
* ``MASTER_MOVE`` — A4, `remove` every other member, then the master:
  :mod:`reconciler.plan.master_move`;
* ``SCHEMA_REPAIR`` — A6, `clear error` (when in error), `upgrade_schema`, due when
  :func:`schema_repair_pending`: :mod:`reconciler.plan.repair`;
* ``REMOVE_EXTRA`` — `remove` on a member the spec does not list:
  :mod:`reconciler.plan.removal`;
* ``REBUILD`` — A5/TAC 216549, the master's certificates or interface change: `remove` every
  replica, then the master, prepare, `initialize` the former master, `join` the others:
  :mod:`reconciler.plan.rebuild`;
* ``RECOVERY`` — the cluster rebuilt on a node the operator names when its master is lost
  for good (`reconcile recover`, never watch): :mod:`reconciler.plan.recovery`;
* ``BACKUP`` — `backup snapshot` on every member before the first destructive step:
  :mod:`reconciler.plan.backups`.

The preparation of a node that is not clustered (uploads, `localnode`, `certs`), which the
rotation and the master move end with, is :func:`reconciler.plan.preparation.prepare`.
"""

from __future__ import annotations

from reconciler.observe.status_model import ClusterStatus, CommandResult

REJOIN = "rejoin"
MASTER_MOVE = "master-move"
SCHEMA_REPAIR = "schema-repair"
REMOVE_EXTRA = "remove-extra"
REBUILD = "rebuild"
RECOVERY = "recovery"
BACKUP = "backup"
# Procedures after which a node that left rejoins (its join says so).
REJOINING = frozenset({REJOIN, REBUILD, RECOVERY})


def _last_command_was(status: ClusterStatus, command: str, result: CommandResult) -> bool:
    last = status.last_command
    return (
        last is not None
        and last.command is not None
        and " ".join(last.command.split()) == command
        and last.result is result
    )


def schema_repair_pending(status: ClusterStatus) -> bool:
    """A6: the node shows a schema error, or its last `upgrade_schema` failed."""
    if status.error is not None and "schema" in status.error.lower():
        return True
    return _last_command_was(status, "database cluster upgrade_schema", CommandResult.FAILED)


def left_by_remove(status: ClusterStatus) -> bool:
    """The node's last command was a successful `remove`: joining it again is a rejoin."""
    return _last_command_was(status, "database cluster remove", CommandResult.SUCCESS)
