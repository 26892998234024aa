"""structlog configuration: logs go to stderr, results to stdout.

A console renderer when stderr is a terminal, JSON lines otherwise (CI, files).
The :func:`redact_secrets` processor runs last before rendering: values of keys
that look like secrets are masked, and every string registered with
:func:`register_secret` (e.g. the MMP password read from its environment
variable) is replaced by ``***`` wherever it appears in an event.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

SECRET_KEY_PARTS = ("password", "passphrase", "secret", "private_key", "token", "credential")
MASK = "***"
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Never log this value (ignored when empty or very short)."""
    if value and len(value) >= 3:
        _secrets.add(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def scrub_text(text: str) -> str:
    """``text`` with every registered secret masked (for messages outside the log)."""
    scrubbed: str = _scrub(text)
    return scrubbed


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if any(part in key.lower() for part in SECRET_KEY_PARTS):
            event_dict[key] = MASK
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(
    *, verbose: int = 0, json_lines: bool | None = None, stream: TextIO | None = None
) -> None:
    """Configure structlog once per process (idempotent)."""
    out = stream or sys.stderr
    as_json = not out.isatty() if json_lines is None else json_lines
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
