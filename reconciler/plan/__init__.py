"""The pure planner: from a spec and what was observed to an ordered, checked plan.

Owns: the cluster view (identity, the accepted master, membership), the facts each
step depends on, the planner and its procedures (master move, rotation, rebuild,
removal, backups),
the step-effect simulation, the verdict, rendering and saved plans, the recovery's plan
and the draft spec of `reconcile import`. May import ``observe``, ``spec``, ``common`` and
the pure ``source.revision`` (the revision a plan names); imports no I/O library
(``plan.saved`` reads and writes plan files through ``common.file_limits``).
"""
