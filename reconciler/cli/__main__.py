"""``python -m reconciler.cli``: the ``reconcile`` command."""

from reconciler.cli.main import run

run()
