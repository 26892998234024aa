"""Adopting a cluster built by hand: which files are copied, and where they go (pure).

:func:`files_to_read` names what the command downloads from each node: the CA, server
and client certificates always, the private keys only with ``--fetch-keys``; without
it the keys stay on the nodes (``key_on_node``, the bare name), and
:func:`keys_to_find` names the keys whose presence is checked instead.

:func:`layout_certificates` turns what was read (sha256 per node and file name) into the
spec's certificate blocks and the local copies. A file goes to ``certs/<name>`` (a key to
``keys/<name>``) when every node that uses that name has the same content, else to
``certs/<node>/<name>`` for each node (a clash). When every node uses the same files
(names and content: a client only its client pair and CA) there is one cluster-wide
``certificates:`` block; otherwise every node gets its own block and the cluster-wide one
holds the master's CA and client pair (what a node added later without its own block
would use, with a server pair of its own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from reconciler.plan.adoption import Draft, DraftNode
from reconciler.spec.model import NodeRole

CERTS_DIR = "certs"
KEYS_DIR = "keys"


@dataclass(frozen=True)
class PairPaths:
    cert: str
    key: str | None = None  # a local copy (keys/...)
    key_on_node: str | None = None  # the key stays on the node under this bare name


@dataclass(frozen=True)
class SetPaths:
    ca: str
    client: PairPaths
    server: PairPaths | None = None


@dataclass(frozen=True)
class LocalCopy:
    path: str  # relative to the spec's folder
    node: str  # the node it is copied from
    remote_name: str
    is_key: bool


@dataclass(frozen=True)
class CertLayout:
    cluster: SetPaths
    per_node: tuple[tuple[str, SetPaths], ...]  # (node name, its block); empty: shared
    copies: tuple[LocalCopy, ...]

    @property
    def shared(self) -> bool:
        return not self.per_node

    def for_node(self, name: str) -> SetPaths | None:
        return dict(self.per_node).get(name)


def _uses(node: DraftNode) -> list[tuple[str, str, bool]]:
    """(field, remote name, is a key) of each file a node uses, in `certs` order."""
    c = node.certs
    out = [("ca", c.ca, False), ("client.cert", c.client_cert, False)]
    out.append(("client.key", c.client_key, True))
    if node.role is NodeRole.DATABASE and c.server_cert and c.server_key:
        out += [("server.cert", c.server_cert, False), ("server.key", c.server_key, True)]
    return out


def files_to_read(draft: Draft, *, fetch_keys: bool) -> dict[str, tuple[str, ...]]:
    """Node name -> the remote names to download (certificates; keys with --fetch-keys)."""
    return {
        n.name: tuple(dict.fromkeys(name for _, name, key in _uses(n) if fetch_keys or not key))
        for n in draft.nodes
    }


def keys_to_find(draft: Draft) -> dict[str, tuple[str, ...]]:
    """Node name -> the keys that stay on it (their presence is checked, never their bytes)."""
    return {n.name: tuple(dict.fromkeys(x for _, x, key in _uses(n) if key)) for n in draft.nodes}


def layout_certificates(
    draft: Draft, digests: Mapping[str, Mapping[str, str]], *, fetch_keys: bool
) -> CertLayout | list[str]:
    """The certificate blocks and copies (see the module docstring), or the problems."""
    contents: dict[tuple[bool, str], set[str]] = {}
    problems: list[str] = []
    for n in draft.nodes:
        for _, name, key in _uses(n):
            if key and not fetch_keys:
                continue
            digest = digests.get(n.name, {}).get(name)
            if digest is None:
                problems.append(f"{n.name}: {name} was not read")
                continue
            contents.setdefault((key, name), set()).add(digest)
    if problems:
        return problems
    clashing = {k for k, shas in contents.items() if len(shas) > 1}

    def path(node: str, name: str, key: bool) -> str:
        folder = KEYS_DIR if key else CERTS_DIR
        return f"{folder}/{node}/{name}" if (key, name) in clashing else f"{folder}/{name}"

    problems = _folder_clashes(draft, contents, clashing)
    if problems:
        return problems
    sets: dict[str, SetPaths] = {}
    copies: dict[str, LocalCopy] = {}
    for n in draft.nodes:
        for _, name, key in _uses(n):
            if fetch_keys or not key:
                local = path(n.name, name, key)
                copies.setdefault(local, LocalCopy(local, n.name, name, key))
        sets[n.name] = _set_paths(n, path, fetch_keys=fetch_keys)
    db = [sets[n.name] for n in draft.nodes if n.role is NodeRole.DATABASE]
    clients = [sets[n.name] for n in draft.nodes if n.role is NodeRole.CLIENT]
    first = db[0]
    shared = all(s == first for s in db) and all(
        (s.ca, s.client) == (first.ca, first.client) for s in clients
    )
    if shared:
        return CertLayout(cluster=first, per_node=(), copies=tuple(copies.values()))
    master = replace(sets[draft.master], server=None)
    per_node = tuple((n.name, sets[n.name]) for n in draft.nodes)
    return CertLayout(cluster=master, per_node=per_node, copies=tuple(copies.values()))


def _set_paths(
    node: DraftNode, path: Callable[[str, str, bool], str], *, fetch_keys: bool
) -> SetPaths:
    def pair(cert: str, key: str) -> PairPaths:
        if fetch_keys:
            return PairPaths(cert=path(node.name, cert, False), key=path(node.name, key, True))
        return PairPaths(cert=path(node.name, cert, False), key_on_node=key)

    c = node.certs
    server = None
    if node.role is NodeRole.DATABASE and c.server_cert and c.server_key:
        server = pair(c.server_cert, c.server_key)
    return SetPaths(
        ca=path(node.name, c.ca, False), client=pair(c.client_cert, c.client_key), server=server
    )


def _folder_clashes(
    draft: Draft, contents: Mapping[tuple[bool, str], set[str]], clashing: set[tuple[bool, str]]
) -> list[str]:
    """A file kept as ``certs/<name>`` where ``certs/<name>/`` holds a node's copies."""
    out: list[str] = []
    for key, folder in ((False, CERTS_DIR), (True, KEYS_DIR)):
        files = {name.lower() for k, name in contents if k is key and (k, name) not in clashing}
        if not any(k is key for k, _ in clashing):
            continue
        out += [
            f"{folder}/{n.name} would be both a file and the folder of {n.name}'s copies: "
            "give the node another name with --name"
            for n in draft.nodes
            if n.name.lower() in files
        ]
    return out
