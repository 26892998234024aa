"""The pure planner: from a spec and what was observed to an ordered, checked plan.

Owns: the cluster view (identity, the accepted master, membership), the facts each
step depends on, the planner and its procedures (master move, rotation, removal),
the step-effect simulation, the verdict, rendering and saved plans. May import
``observe``, ``spec`` and ``common``; imports no I/O library (``plan.saved`` reads
and writes plan files through ``common.file_limits``).
"""
