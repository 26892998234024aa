"""Declarative reconciliation of Cisco Meeting Server database clusters.

The packages are the pipeline, each importing only the ones below it
(the contract is in ``.importlinter``, checked by ``make test``)::

    cli      the commands: validate, plan, observe, status, apply, watch, schema
    watch    the loop that re-plans on change and heals or reports drift
    apply    the executor, its outcome checks, the lock, the audit log
    plan     the pure planner: cluster view, facts, procedures, rendering
    observe  the status parser and models, snapshots, the observer
    spec     the desired state: model, loading, rules, certificate checks
    common   errors, diagnostics, bounded file reads, addresses, log redaction

``transport`` (the interface, SSH, the bounded transport) sits beside the stages:
observe and apply use it, and it knows only ``spec`` and ``common``.
See ARCHITECTURE.md.
"""
