"""What the live commands print and return: results to stdout, errors to stderr, exit codes.

Exit codes: 0 ok / converged, 1 error (nothing or not everything done), 2 not
converged (`status`: drifted, degraded or no master; `apply`: applied but
something is held back or still settling).
"""

from __future__ import annotations

import sys

from reconciler.cli.colour import write_text

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_CONVERGED = 2


def to_stderr(text: str) -> None:
    """One line to stderr: warnings, errors, notes about files written."""
    write_text(sys.stderr, text.rstrip("\n") + "\n")


def to_stdout(text: str) -> None:
    """One line to stdout, flushed at once (apply's progress is read as it happens)."""
    write_text(sys.stdout, text.rstrip("\n") + "\n")
