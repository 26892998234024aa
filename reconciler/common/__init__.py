"""What every stage shares: errors, diagnostics, bounded file reads, addresses, redaction.

Owns: the error hierarchy, the ``file:line:column`` diagnostic, the one address
normalisation, the majority rule (A1), reading a file to at most its limit, writing
files its owner's only, the frozen value base, and the log redaction of secrets.
Imports nothing else from reconciler.
"""
