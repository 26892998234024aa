"""Where the lock lives: the ``--lock URL`` parsed, passwords redacted, lock durations.

``--lock URL`` (or ``$RECONCILE_LOCK``; the flag wins; else ``file:``) names the backend:
``file:[/DIR]``, ``etcd://HOST:PORT[/PREFIX]`` or ``postgresql://[USER@]HOST[:PORT]/DBNAME``.
:func:`parse_lock_url` turns it into a :class:`LockUrl` or raises :class:`LockUrlError` with
one clear message; it refuses the CMS cluster's own database. Any URL shown in a message or a
log is :func:`redact`-ed. Credentials come from the environment (the ``*_ENV`` names here).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from urllib.parse import SplitResult, urlsplit, urlunsplit

from reconciler.common.errors import ReconcilerError

LOCK_ENV = "RECONCILE_LOCK"
PASSWORD_ENV = "RECONCILE_LOCK_PASSWORD"
TOKEN_ENV = "RECONCILE_LOCK_TOKEN"
DEFAULT_ETCD_PREFIX = "/cms-reconciler/locks"
# The CMS database cluster's own database (cmslab/pgdb.py DB; CMS's "cluster" database).
CMS_DATABASES = frozenset({"cluster"})


class LockUrlError(ReconcilerError):
    """A ``--lock`` / ``$RECONCILE_LOCK`` URL that cannot be used."""


@dataclass(frozen=True)
class LockUrl:
    scheme: str  # "file" | "etcd" | "postgresql"
    raw: str
    host: str = ""
    port: int | None = None
    path: str = ""  # file: directory (may be ""); etcd: key prefix; postgresql: database
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    query: str = ""

    @property
    def shown(self) -> str:
        return redact(self.raw)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (userinfo and ``password=`` parameters)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hostport}"
    query = re.sub(r"(?i)((?:^|&)(?:password|token)=)[^&]*", r"\1***", parts.query)
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_lock_url(url: str | None = None) -> LockUrl:
    """The lock URL: ``url``, else ``$RECONCILE_LOCK``, else ``file:``. LockUrlError if bad."""
    raw = url if url else os.environ.get(LOCK_ENV) or "file:"
    shown = redact(raw)
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise LockUrlError(f"lock URL {shown}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise LockUrlError(f"lock URL {shown}: a file lock is local; use file:/DIRECTORY")
        return LockUrl("file", raw, path=parts.path)
    if scheme not in ("etcd", "postgresql", "postgres"):
        raise LockUrlError(
            f"lock URL {shown}: unknown scheme {parts.scheme!r}; use file:, "
            "etcd://HOST:PORT[/PREFIX] or postgresql://[USER@]HOST[:PORT]/DBNAME"
        )
    if not parts.hostname:
        raise LockUrlError(f"lock URL {shown}: no host; e.g. {scheme}://lockhost:PORT/...")
    server = LockUrl(
        scheme,
        raw,
        host=parts.hostname,
        port=port,
        username=parts.username,
        password=parts.password,
    )
    if scheme == "etcd":
        if port is None:
            raise LockUrlError(f"lock URL {shown}: no port; e.g. etcd://{parts.hostname}:2379")
        return replace(server, path=parts.path.rstrip("/") or DEFAULT_ETCD_PREFIX)
    database = parts.path.lstrip("/")
    if not database:
        raise LockUrlError(
            f"lock URL {shown}: no database; name one the administrators run for locks, "
            f"e.g. postgresql://{parts.hostname}/reconciler"
        )
    if database.lower() in CMS_DATABASES:
        raise LockUrlError(
            f"lock URL {shown}: refusing the CMS cluster's own database {database!r}; "
            "the lock must live on a PostgreSQL the administrators run, not on the cluster "
            "it protects"
        )
    return replace(server, scheme="postgresql", path=database, query=parts.query)


# ------------------------------------------------------------------------ durations
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``500ms`` or plain seconds -> seconds (argparse type)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 5m, 1h or seconds)")
    scale = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]
    return float(match.group(1)) * scale
