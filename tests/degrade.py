"""Pure helpers: degrade `database cluster status` texts the way real captures differ.

Each function takes a text (or the texts of all nodes) and returns the degraded copy; none
reads files or the planner. They work on texts in the layout of ``docs/status-format.md``
(as ``reconciler.observe.status_render.render_status`` prints them and as the published samples
show). :func:`variants` lists every degradation that changes a given text, by kind.

Kinds and what they lose (issue 8):

* spelling only (the information is all there): ``respell`` (one member address in another
  spelling: IPv6 fully expanded, a host name in upper case or with a trailing dot),
  ``tight_labels`` (a single space before every label's colon);
* lossy: ``cut`` (the text ends after any line), ``drop_me`` (no ``(me)`` marker),
  ``drop_interface`` / ``drop_certificates`` / ``drop_last_command`` / ``drop_status``,
  ``blank_in_nodes`` (a blank line between two member lines), ``stale_master`` (a replica
  prints its own line ``Connected Master``), and, on the observation rather than the text,
  ``swap`` (two nodes' texts exchanged) and ``no_exit_status`` (the command's channel closed
  without an exit status).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

SPELLING = frozenset({"respell", "tight_labels"})
TEXT_KINDS = (
    "cut",
    "drop_me",
    "drop_interface",
    "drop_certificates",
    "drop_last_command",
    "drop_status",
    "blank_in_nodes",
    "stale_master",
    "respell",
    "tight_labels",
)
OBSERVATION_KINDS = ("swap", "no_exit_status")
NO_EXIT_STATUS = "channel closed without an exit status (retryable)"

CERTIFICATE_LABELS = (
    "server key",
    "server certificate",
    "client key",
    "client certificate",
    "ca certificate",
)
LABELS = (
    "error",
    "status",
    "node in use",
    "interface",
    "last command",
    *CERTIFICATE_LABELS,
)
_ME = re.compile(r"\s*\(\s*me\s*\)", re.IGNORECASE)
# `<address>[ (me)] <padding>: <state>`; the separator is the first colon with whitespace
# before it (docs/status-format.md, "Member block"), as the renderer prints it.
_MEMBER = re.compile(
    r"^(?P<indent>\s*)(?P<address>\S+?)(?P<me>\s*\(me\))?(?P<pad>\s+):\s?(?P<state>.*)$"
)


@dataclass(frozen=True)
class Variant:
    kind: str
    detail: str  # which line, which spelling: for messages
    text: str

    @property
    def lossy(self) -> bool:
        return self.kind not in SPELLING


# ----- reading the layout (just enough to find the lines to change) -----
def lines_of(text: str) -> list[str]:
    return text.splitlines()


def join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def label_of(line: str) -> str | None:
    """The known label a `Label : value` line starts with (lower case), or None."""
    if ":" not in line:
        return None
    label = " ".join(line.split(":", 1)[0].split()).lower()
    return label if label in LABELS else None


def member_indexes(text: str) -> list[int]:
    """Indexes of the member lines: the lines after `Nodes:` up to the next label line."""
    lines = lines_of(text)
    out: list[int] = []
    inside = False
    for i, line in enumerate(lines):
        if line.strip().lower() == "nodes:":
            inside = True
            continue
        if not inside:
            continue
        if label_of(line) is not None or line.strip().lower() == "certificates":
            break
        if not line.strip():
            if out:
                break
            continue
        if _MEMBER.match(line):
            out.append(i)
    return out


def member_address(line: str) -> str | None:
    m = _MEMBER.match(line)
    return m.group("address") if m else None


def own_index(text: str) -> int | None:
    """The index of the member line marked `(me)`."""
    lines = lines_of(text)
    return next((i for i in member_indexes(text) if _ME.search(lines[i])), None)


def has_me(text: str) -> bool:
    return own_index(text) is not None


# ----- text degradations -----
def cut(text: str, keep: int) -> str:
    """Only the first ``keep`` lines (a capture cut short)."""
    return join(lines_of(text)[:keep])


def drop_me(text: str) -> str:
    """The `(me)` marker left out (padding kept, so the values stay in their column)."""
    lines = lines_of(text)
    i = own_index(text)
    if i is None:
        return text
    line = lines[i]
    m = _ME.search(line)
    assert m is not None
    lines[i] = line[: m.start()] + " " * (m.end() - m.start()) + line[m.end() :]
    return join(lines)


def drop_label(text: str, label: str) -> str:
    """Every line with this label (``"interface"``, ``"last command"``, ``"status"``) left out."""
    return join([line for line in lines_of(text) if label_of(line) != label])


def drop_certificates(text: str) -> str:
    """The `Certificates` header and the five certificate lines left out."""
    return join(
        [
            line
            for line in lines_of(text)
            if line.strip().lower() not in ("certificates", "certificates:")
            and label_of(line) not in CERTIFICATE_LABELS
        ]
    )


def blank_in_nodes(text: str, after: int) -> str:
    """A blank line after the ``after``-th member line (0-based), before the next member."""
    members = member_indexes(text)
    if after + 1 >= len(members):
        return text
    lines = lines_of(text)
    at = members[after] + 1
    return join([*lines[:at], "", *lines[at:]])


def expanded_ipv6(address: str) -> str | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return ip.exploded if ip.version == 6 and ip.exploded != address else None


def other_spellings(address: str) -> list[str]:
    """Spellings of the same address that the project's normalisation equates."""
    expanded = expanded_ipv6(address)
    if expanded is not None:
        return [expanded]
    try:
        ipaddress.ip_address(address)
        return []  # IPv4: no other spelling is the same address
    except ValueError:
        pass
    out = [address.upper(), address + "."]
    return [s for s in out if s != address]


def respell(text: str, index: int, spelling: str) -> str:
    """The member line at ``index`` prints its address as ``spelling`` (same column)."""
    lines = lines_of(text)
    m = _MEMBER.match(lines[index])
    if m is None:
        return text
    head = m.group("indent") + spelling + (m.group("me") or "")
    width = len(m.group("indent") + m.group("address") + (m.group("me") or "") + m.group("pad"))
    lines[index] = head.ljust(max(width, len(head) + 1)) + ": " + m.group("state")
    return join(lines)


def tight_labels(text: str) -> str:
    """A single space before the colon of every label and member line."""
    lines = lines_of(text)
    members = set(member_indexes(text))
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in members:
            m = _MEMBER.match(line)
            assert m is not None
            me = " (me)" if m.group("me") else ""
            out.append(f"{m.group('indent')}{m.group('address')}{me} : {m.group('state')}")
        elif label_of(line) is not None:
            label, value = line.split(":", 1)
            out.append(f"{label.rstrip()} : {value.strip()}".rstrip())
        else:
            out.append(line)
    return join(out)


def stale_master(text: str) -> str:
    """A replica prints its own line as the master (`Connected Master` / `Connected Primary`)."""
    i = own_index(text)
    if i is None:
        return text
    lines = lines_of(text)
    m = _MEMBER.match(lines[i])
    assert m is not None
    state = m.group("state")
    words = state.split()
    if len(words) < 2 or words[0].lower() != "connected":
        return text
    if words[1].lower() == "slave":
        claim = "Connected Master"
    elif words[1].lower() == "replica":
        claim = "Connected Primary"
    else:
        return text
    lines[i] = lines[i][: m.start("state")] + claim
    return join(lines)


def variants(text: str) -> dict[str, list[Variant]]:
    """Every text degradation that changes ``text``, by kind (kinds without one are left out)."""
    out: dict[str, list[Variant]] = {}

    def add(kind: str, detail: str, new: str) -> None:
        if new != text:
            out.setdefault(kind, []).append(Variant(kind, detail, new))

    lines = lines_of(text)
    for keep in range(1, len(lines)):
        if any(line.strip() for line in lines[keep:]):
            add("cut", f"cut after line {keep} ({lines[keep - 1].strip()!r})", cut(text, keep))
    add("drop_me", "no (me)", drop_me(text))
    add("drop_interface", "no Interface line", drop_label(text, "interface"))
    add("drop_certificates", "no Certificates block", drop_certificates(text))
    add("drop_last_command", "no Last command line", drop_label(text, "last command"))
    add("drop_status", "no Status line", drop_label(text, "status"))
    members = member_indexes(text)
    for after in range(len(members) - 1):
        add("blank_in_nodes", f"blank line after member {after + 1}", blank_in_nodes(text, after))
    add("stale_master", "own line claims master", stale_master(text))
    for i in members:
        address = member_address(lines[i])
        assert address is not None
        for spelling in other_spellings(address):
            add("respell", f"{address} printed {spelling}", respell(text, i, spelling))
    add("tight_labels", "single space before colons", tight_labels(text))
    return out


# ----- observation degradations -----
def swap(texts: Mapping[str, str | None], a: str, b: str) -> dict[str, str | None]:
    """The texts of nodes ``a`` and ``b`` exchanged (e.g. `mmp_host` pointing elsewhere)."""
    out = dict(texts)
    out[a], out[b] = texts[b], texts[a]
    return out


def swappable(texts: Mapping[str, str | None], a: str, b: str) -> bool:
    """Swapping changes something and at least one of the two is a clustered member."""
    ta, tb = texts.get(a), texts.get(b)
    return a != b and ta is not None and tb is not None and ta != tb and (has_me(ta) or has_me(tb))
