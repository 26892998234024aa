"""A revision of the specs: one git commit as the reconciler names it everywhere (pure).

:class:`Revision` is what a plan header, a saved plan, the audit log and the journal record
about the commit a plan was made from: its full sha, subject, author, commit time (UTC) and
what was checked of its signature (:class:`SignatureState`; the signer's principal when
verified). ``describe()`` is the short form people read (``3f2a9c1 'add cms-fra-2'``),
``to_dict()``/``from_dict()`` the form files hold.

Runs from a spec file rather than a git source say so with :func:`describe_local`
("revision: working tree", with the commit when the file is in a checkout and "(modified)"
when it differs from it).

The parsers of git's own output (:func:`parse_log_record`, :func:`parse_signature_check`)
are here too, so that what the reconciler reads from git is tested without git. Nothing in
this module does I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: ``git log``/``git show`` format of one record, fields separated by NUL (``%x00``):
#: full sha, subject, author name, author email, committer time (Unix seconds).
LOG_FORMAT = "%H%x00%s%x00%an%x00%ae%x00%ct"
WORKING_TREE = "revision: working tree"
SUBJECT_LIMIT = 60

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_GOOD = re.compile(r'^Good "git" signature for (?P<principal>.+?) with (?P<key>\S+ key \S+)$')
_KEY = re.compile(r"with (?P<key>\S+ key \S+)")


class SignatureState(StrEnum):
    """What is known of a commit's signature."""

    VERIFIED = "verified"  # git verified it against the allowed-signers file
    UNSIGNED = "unsigned"
    BAD = "bad"  # signed, but not by an allowed signer, or the signature does not verify
    NOT_CHECKED = "not checked"


def is_full_sha(text: str) -> bool:
    """A full lowercase object name (SHA-1 or SHA-256 repositories)."""
    return _SHA.fullmatch(text) is not None


def _escape(text: str) -> str:
    """``text`` safe inside single quotes on one terminal line: backslash and quote escaped,
    control characters shown as ``\\xNN``."""
    out = []
    for ch in text:
        if ch in "\\'":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return "".join(out)


def _shorten(text: str, limit: int = SUBJECT_LIMIT) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 3].rstrip() + "..."


@dataclass(frozen=True)
class Revision:
    """One commit: identity, who made it, when, and what was checked of its signature."""

    sha: str
    subject: str
    author_name: str
    author_email: str
    committed_at: dt.datetime
    signature: SignatureState = SignatureState.NOT_CHECKED
    signer: str | None = None  # the allowed-signers principal, only when VERIFIED
    signature_problem: str | None = None  # git's words, only when BAD

    def __post_init__(self) -> None:
        if not is_full_sha(self.sha):
            raise ValueError("a revision needs a full lowercase commit sha")
        if self.committed_at.utcoffset() is None:
            raise ValueError("committed_at must be timezone-aware")
        if self.committed_at.utcoffset() != dt.timedelta(0):
            object.__setattr__(self, "committed_at", self.committed_at.astimezone(dt.UTC))
        if (self.signer is not None) != (self.signature is SignatureState.VERIFIED):
            raise ValueError("a signer is named exactly when the signature is verified")

    @property
    def short(self) -> str:
        return self.sha[:7]

    @property
    def author(self) -> str:
        return f"{self.author_name} <{self.author_email}>"

    def describe(self) -> str:
        """``3f2a9c1 'add cms-fra-2'``: the short sha and the (shortened, escaped) subject."""
        return f"{self.short} '{_escape(_shorten(self.subject))}'"

    def with_signature(
        self, state: SignatureState, signer: str | None = None, problem: str | None = None
    ) -> Revision:
        return Revision(
            self.sha, self.subject, self.author_name, self.author_email, self.committed_at,
            state, signer, problem,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; :meth:`from_dict` reads it back."""
        return {
            "sha": self.sha,
            "short": self.short,
            "subject": self.subject,
            "author": {"name": self.author_name, "email": self.author_email},
            "committed_at": self.committed_at.isoformat().replace("+00:00", "Z"),
            "signature": str(self.signature),
            "signer": self.signer,
            "signature_problem": self.signature_problem,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Revision:
        """The revision :meth:`to_dict` wrote; ValueError when ``data`` is not one."""
        try:
            when = dt.datetime.fromisoformat(str(data["committed_at"]).replace("Z", "+00:00"))
            return cls(
                sha=str(data["sha"]),
                subject=str(data["subject"]),
                author_name=str(data["author"]["name"]),
                author_email=str(data["author"]["email"]),
                committed_at=when,
                signature=SignatureState(data.get("signature", SignatureState.NOT_CHECKED)),
                signer=None if data.get("signer") is None else str(data["signer"]),
                signature_problem=(
                    None if data.get("signature_problem") is None
                    else str(data["signature_problem"])
                ),
            )  # fmt: skip
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a revision record: {exc}") from None


def describe_local(commit: Revision | None, modified: bool) -> str:
    """The revision line of a run from a spec file rather than a git source.

    ``revision: working tree`` outside a checkout; ``revision: working tree at 3f2a9c1
    'subject'`` inside one, with `` (modified)`` when the file differs from that commit.
    """
    if commit is None:
        return WORKING_TREE
    text = f"{WORKING_TREE} at {commit.describe()}"
    return f"{text} (modified)" if modified else text


def parse_log_record(text: str) -> Revision:
    """The :class:`Revision` of one ``git log -1 --format=LOG_FORMAT`` output."""
    fields = text.rstrip("\n").split("\x00")
    if len(fields) != 5:
        raise ValueError(f"unexpected git log output ({len(fields)} fields)")
    sha, subject, name, email, seconds = fields
    try:
        when = dt.datetime.fromtimestamp(int(seconds), dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"unexpected commit time {seconds[:20]!r}") from None
    return Revision(sha, subject, name, email, when)


def parse_signature_check(returncode: int, output: str) -> tuple[SignatureState, str | None]:
    """What ``git verify-commit`` (with ``gpg.format=ssh``) said of a signed commit.

    VERIFIED with the principal only when git succeeded and named one from the allowed-signers
    file (``Good "git" signature for PRINCIPAL with ED25519 key SHA256:...``); BAD with git's
    last line otherwise (a key no allowed signer holds gives "Good ... signature with ... key"
    but "No principal matched.", which is not a verification).
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if returncode == 0:
        for line in lines:
            match = _GOOD.match(line)
            if match:
                return SignatureState.VERIFIED, match.group("principal")
    problem = lines[-1] if lines else f"git verify-commit exited with {returncode}"
    key = next((m.group("key") for line in lines if (m := _KEY.search(line))), None)
    if key and key not in problem:
        problem = f"{problem} ({key})"
    return SignatureState.BAD, _escape(problem[:300])
