"""Carrying a plan out: the executor, outcome checks, diagnosis, the lock, audit, database view.

Owns: running steps in order with the facts re-read before each (compare-and-set),
when a step has worked (``step_outcome``), what to say when it has not
(``diagnosis``), one writer per cluster (``locks``), the audit log and journal, the
state directory, and the read-only database view. May import ``plan``, ``observe``,
``spec``, ``transport`` and ``common``.
"""
