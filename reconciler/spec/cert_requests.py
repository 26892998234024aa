"""Which certificate requests (`pki csr`) a spec asks for: one per key that lives on a node.

Pure. Seed part 1: keys are made on the node (`pki csr <basename> CN:<cn>` writes
``<basename>.key`` and ``<basename>.csr`` into its SFTP root), the CSR goes to the CA, and
the signed certificate comes back into the spec. A pair whose key is a local file
(``key:``) is not requested here: its CSR is made where the key is. The client CN is
always ``postgres``; the server CN is the set's ``server_cn``, else the node's address.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.spec.cert_checks import CLIENT_CN
from reconciler.spec.model import ClusterSpec, KeyPair, NodeRole, NodeSpec


@dataclass(frozen=True)
class CertRequest:
    node: str
    kind: str  # server | client
    basename: str  # `pki csr <basename>`: <basename>.key and <basename>.csr
    cn: str
    cert: str  # where the spec expects the signed certificate (a spec path)

    @property
    def key_name(self) -> str:
        return f"{self.basename}.key"

    @property
    def csr_name(self) -> str:
        return f"{self.basename}.csr"

    @property
    def command(self) -> str:
        return f"pki csr {self.basename} CN:{self.cn}"


@dataclass(frozen=True)
class Skipped:
    node: str
    kind: str
    why: str


def cert_requests(spec: ClusterSpec) -> tuple[list[CertRequest], list[Skipped]]:
    """The requests, node by node in spec order (server first), and the pairs skipped."""
    requests: list[CertRequest] = []
    skipped: list[Skipped] = []
    for node in spec.nodes:
        certs = spec.certificates_for(node.name)
        pairs: list[tuple[str, KeyPair | None, str]] = []
        if node.role is NodeRole.DATABASE:
            pairs.append(("server", certs.server, certs.server_cn or _default_cn(node)))
        pairs.append(("client", certs.client, CLIENT_CN))
        for kind, pair, cn in pairs:
            if pair is None:
                skipped.append(Skipped(node.name, kind, "the spec gives no server pair"))
            elif pair.key_on_node is None:
                skipped.append(
                    Skipped(
                        node.name,
                        kind,
                        f"its key is a local file ({pair.key}): make its CSR where the key is",
                    )
                )
            elif not pair.key_on_node.endswith(".key"):
                skipped.append(
                    Skipped(
                        node.name,
                        kind,
                        f"`pki csr` writes <basename>.key, and key_on_node "
                        f"{pair.key_on_node} does not end in .key",
                    )
                )
            else:
                base = pair.key_on_node.removesuffix(".key")
                requests.append(CertRequest(node.name, kind, base, cn, pair.cert))
    return requests, skipped


def _default_cn(node: NodeSpec) -> str:
    return node.address.strip("[]")
