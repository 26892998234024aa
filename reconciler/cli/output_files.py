"""Files the commands write on request (``plan --out``, ``observe -o``): checked before any
work, written whole and 0600, and a failure is one line naming the flag."""

from __future__ import annotations

from pathlib import Path

from reconciler.common.errors import ReconcilerError
from reconciler.common.private_files import write_private_text


def write_output(path: Path, flag: str, text: str) -> None:
    """Write ``text`` to ``path`` (0600, replaced whole); ReconcilerError naming ``flag``."""
    try:
        write_private_text(path, text)
    except OSError as exc:
        raise ReconcilerError(f"{flag} {path}: {exc.strerror or exc}") from None
