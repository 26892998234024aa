"""`reconcile certs request SPEC [--out DIR]`: certificate requests made on the nodes.

Seed part 1. For every key the spec says lives on a node (``key_on_node``), `pki csr
<basename> CN:<cn>` runs on that node (client CN ``postgres``; server CN the set's
``server_cn``, else the node's address), and the ``.csr`` is fetched over SFTP into
``DIR/<node>/`` with a ``manifest.json`` (node, kind, file, CN, sha256, where the signed
certificate goes). The key never leaves the node. A key already on the node is not made
again: its CSR is fetched if it is there, else the pair is refused with the reason. Each
fetched CSR is read back and its CN checked. The spec's certificates need not exist yet
(they are what the CA will return), so the spec is validated without its files.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from reconciler.cli.arguments import add_connection_arguments
from reconciler.cli.live_observation import make_transport
from reconciler.cli.live_output import EXIT_ERROR, EXIT_OK, to_stderr, to_stdout
from reconciler.common.errors import ReconcilerError, TransportError
from reconciler.common.logging_setup import configure_logging
from reconciler.common.private_files import private_dir, write_private_text
from reconciler.spec.cert_requests import CertRequest, cert_requests
from reconciler.spec.loader import LoadedSpec, load_spec
from reconciler.transport.interface import Transport, target_for

MANIFEST = "manifest.json"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("certs", help="certificate work on the nodes (`certs request`)")
    sub = p.add_subparsers(dest="certs_command", required=True, parser_class=type(p))
    r = sub.add_parser(
        "request",
        help="make keys and CSRs on the nodes (`pki csr`) and fetch the CSRs for the CA",
    )
    r.add_argument("spec", type=Path, metavar="SPEC")
    r.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where the CSRs and manifest.json go (default: csr/ next to the spec)",
    )
    add_connection_arguments(r)
    r.set_defaults(handler=cmd_certs_request)


@dataclass(frozen=True)
class Fetched:
    request: CertRequest
    path: Path
    sha256: str
    made: bool  # False: the key was already on the node


def cmd_certs_request(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    loaded = load_spec(args.spec, check_files=False)
    for warning in loaded.warnings:
        to_stderr(warning.render())
    requests, skipped = cert_requests(loaded.spec)
    for s in skipped:
        to_stderr(f"note: {s.node} {s.kind} pair not requested: {s.why}")
    if not requests:
        raise ReconcilerError(
            f"{args.spec}: no key lives on a node (`key_on_node`), so there is nothing to "
            "request: write `key_on_node: <name>.key` instead of `key:` for the pairs whose "
            "keys the nodes should make"
        )
    out = args.out if args.out is not None else loaded.base_dir / "csr"
    try:
        private_dir(out)
    except OSError as exc:
        raise ReconcilerError(f"--out {out}: {exc.strerror or exc}") from None
    fetched, failures = asyncio.run(_request_all(loaded, args, requests, out))
    for node, error in failures:
        to_stderr(f"error: {node}: {error}")
    if fetched:
        _write_manifest(out, loaded, fetched)
        _say_what_to_do(out, fetched)
    return EXIT_ERROR if failures else EXIT_OK


async def _request_all(
    loaded: LoadedSpec, args: argparse.Namespace, requests: list[CertRequest], out: Path
) -> tuple[list[Fetched], list[tuple[str, str]]]:
    transport = make_transport(loaded, args)
    by_node: dict[str, list[CertRequest]] = {}
    for r in requests:
        by_node.setdefault(r.node, []).append(r)
    try:
        results = await asyncio.gather(
            *(_request_node(loaded, transport, node, rs, out) for node, rs in by_node.items())
        )
    finally:
        await transport.close()
    fetched = [f for done, _ in results for f in done]
    failures = [(node, error) for _, (node, error) in results if error is not None]
    return fetched, failures


async def _request_node(
    loaded: LoadedSpec, transport: Transport, node: str, requests: list[CertRequest], out: Path
) -> tuple[list[Fetched], tuple[str, str | None]]:
    """One node's requests, in order; the first failure stops that node's (named)."""
    done: list[Fetched] = []
    try:
        session = await transport.session(target_for(loaded.spec, node))
        listing = await session.list_files()
        for r in requests:
            made = r.key_name not in listing
            if not made and r.csr_name not in listing:
                return done, (
                    node,
                    f"{r.key_name} is already on the node but {r.csr_name} is not: it is not "
                    "made again; choose another key_on_node name for a new key",
                )
            if made:
                output = await session.run(r.command)
                if output.failed:
                    said = output.text.strip().splitlines()
                    return done, (
                        node,
                        f"`{r.command}` failed: {said[-1] if said else 'no output'}",
                    )
            data = await session.download(r.csr_name)
            problem = _csr_problem(data, r)
            if problem is not None:
                return done, (node, f"{r.csr_name}: {problem}")
            path = private_dir(out / node) / r.csr_name
            write_private_text(path, data.decode("ascii"))
            done.append(Fetched(r, path, hashlib.sha256(data).hexdigest(), made))
    except TransportError as exc:
        return done, (node, exc.detail)
    return done, (node, None)


def _csr_problem(data: bytes, r: CertRequest) -> str | None:
    """The fetched CSR must be one, signed by its key, for the CN asked."""
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError:
        return "not a PEM certificate request"
    if not csr.is_signature_valid:
        return "its signature does not verify"
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else None
    if cn != r.cn:
        return f"its CN is {cn!r}, {r.cn!r} was asked for"
    return None


def _write_manifest(out: Path, loaded: LoadedSpec, fetched: list[Fetched]) -> None:
    doc = {
        "cluster": loaded.spec.cluster,
        "spec": str(loaded.path),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "requests": [
            {
                "node": f.request.node,
                "kind": f.request.kind,
                "file": str(f.path.relative_to(out)),
                "cn": f.request.cn,
                "sha256": f.sha256,
                "key_on_node": f.request.key_name,
                "certificate": f.request.cert,
                "key_made_now": f.made,
            }
            for f in fetched
        ],
    }
    write_private_text(out / MANIFEST, json.dumps(doc, indent=2) + "\n")


def _say_what_to_do(out: Path, fetched: list[Fetched]) -> None:
    for f in fetched:
        how = "made now" if f.made else "key already on the node"
        to_stdout(
            f"{f.request.node} {f.request.kind}: {f.path} (CN {f.request.cn}; {how}) -> "
            f"signed certificate to {f.request.cert}"
        )
    to_stdout(
        f"Send these {len(fetched)} certificate request(s) to your CA (list and checksums: "
        f"{out / MANIFEST}). Save each signed certificate where the spec's `cert:` says, then "
        "`reconcile validate` and `reconcile apply`. The keys stay on the nodes."
    )
