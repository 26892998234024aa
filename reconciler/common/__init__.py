"""What every stage shares: errors, diagnostics, bounded file reads, addresses, redaction.

Owns: the error hierarchy, the ``file:line:column`` diagnostic, the one address
normalisation, reading a file to at most its limit, the frozen value base, and
the log redaction of secrets. Imports nothing else from reconciler.
"""
