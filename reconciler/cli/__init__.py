"""The commands: ``reconcile validate|plan|observe|status|apply|watch|schema``.

Owns: arguments, exit codes, what is printed where (results to stdout, errors to
stderr). May import every stage. ``python -m reconciler.cli`` runs :func:`main.run`.
"""
