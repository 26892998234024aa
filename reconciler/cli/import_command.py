"""`reconcile import`: adopt a running cluster built by hand into a commented spec.

Like Terraform's ``import`` with ``-generate-config-out``: read the given hosts and every
member their statuses list (:mod:`reconciler.cli.import_reading`), judge the evidence and
draft the spec (the pure :mod:`reconciler.plan.adoption`), copy the certificates (the keys
only with ``--fetch-keys``) next to the spec and write the spec, validated by the real
loader before it is put in place (:mod:`reconciler.cli.import_files`). `reconcile plan` on
the result plans no changes.

Evidence before action: any problem refuses the import with one ``error:`` line per
problem (naming the node and why), exit 1, and nothing is written. An existing ``-o`` is
replaced only with ``--force``. Results go to stdout, notes and errors to stderr.
Importing this module loads no SSH library.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.cli.import_arguments import add_import_arguments
from reconciler.cli.import_files import Written, check_copies, put_spec, write_copies
from reconciler.cli.import_reading import read_cluster, read_files
from reconciler.cli.live_output import EXIT_OK, to_stderr
from reconciler.common.errors import ReconcilerError
from reconciler.common.logging_setup import configure_logging
from reconciler.common.private_files import output_problem
from reconciler.plan.adoption import Draft, adopt
from reconciler.plan.adoption_files import (
    CertLayout,
    files_to_read,
    keys_to_find,
    layout_certificates,
)
from reconciler.plan.adoption_render import ImportHeader, SshBlock, render_spec
from reconciler.spec.model import NodeRole
from reconciler.transport.interface import Transport


class ImportRefusedError(ReconcilerError):
    """The evidence does not allow an import: one line per problem (the boundary adds the
    first ``error:``)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\nerror: ".join(problems))
        self.problems = tuple(problems)


def register(subparsers: Any) -> None:
    """Add `import` to the subcommands of `reconcile`."""
    p = subparsers.add_parser(
        "import",
        help="adopt a running cluster built by hand: write its spec (and certs/)",
        description="Read a running cluster (the given hosts and every member their "
        "statuses list) and write a commented spec that plans no changes, with the "
        "certificates the nodes use copied into certs/ (the keys into keys/ only with "
        "--fetch-keys). Refuses, writing nothing, when the evidence is incomplete or "
        "contradictory.",
    )
    add_import_arguments(p)
    p.set_defaults(handler=cmd_import)


def _check_output(args: argparse.Namespace) -> None:
    out: Path = args.output
    problem = output_problem(out)
    if problem is not None:
        raise ReconcilerError(f"-o {out}: {problem}")
    if (out.exists() or out.is_symlink()) and not args.force:
        raise ReconcilerError(f"-o {out}: exists; give --force to replace it")
    if os.environ.get(args.password_env) is None:
        raise ReconcilerError(
            f"--password-env {args.password_env}: the environment variable is not set (it "
            f"must hold the MMP password for user {args.user})"
        )


def _transport(args: argparse.Namespace) -> Transport:
    # Imported here: every `reconcile` command builds the parser that registers `import`.
    from reconciler.transport.ssh import SshSettings, SshTransport

    timeouts = {"connect_timeout": args.timeout, "command_timeout": args.timeout}
    settings = SshSettings(
        user=args.user,
        known_hosts=args.known_hosts.expanduser().resolve(),
        password_env=args.password_env,
        accept_new_host_keys=args.accept_new_host_keys,
        **(timeouts if args.timeout is not None else {}),
    )
    return SshTransport(settings)


async def _gather(args: argparse.Namespace) -> tuple[Draft, dict[str, dict[str, bytes]]]:
    """Read everything (nothing is written): the draft and the files' bytes, or refuse."""
    transport = _transport(args)
    try:
        readings, stopped = await read_cluster(transport, args.hosts)
        if stopped is not None:
            raise ImportRefusedError([stopped])
        adoption = adopt(readings, cluster=args.cluster, names=dict(args.names))
        if adoption.draft is None:
            raise ImportRefusedError(adoption.problems)
        draft = adoption.draft
        wanted = files_to_read(draft, fetch_keys=args.fetch_keys)
        on_node = {} if args.fetch_keys else keys_to_find(draft)
        files, problems = await read_files(transport, draft, wanted, on_node)
        if problems:
            raise ImportRefusedError(problems)
        return draft, files
    finally:
        await transport.close()


def _spec_text(args: argparse.Namespace, draft: Draft, layout: CertLayout, now: dt.datetime) -> str:
    out: Path = args.output
    folder = out.parent.absolute()
    known_hosts = os.path.relpath(args.known_hosts.expanduser().absolute(), folder)
    ssh = SshBlock(
        user=args.user,
        password_env=args.password_env,
        known_hosts=known_hosts,
        port=args.hosts[0][1],
    )
    hosts = tuple(
        h if p == 22 else (f"[{h}]:{p}" if ":" in h else f"{h}:{p}") for h, p in args.hosts
    )
    header = ImportHeader(hosts=hosts, at=now, fetch_keys=args.fetch_keys, spec_name=out.name)
    return render_spec(draft, layout, ssh, header)


def cmd_import(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    _check_output(args)
    draft, files = asyncio.run(_gather(args))
    digests = {
        node: {name: hashlib.sha256(data).hexdigest() for name, data in got.items()}
        for node, got in files.items()
    }
    layout = layout_certificates(draft, digests, fetch_keys=args.fetch_keys)
    if isinstance(layout, list):
        raise ImportRefusedError(layout)
    data = {c.path: files[c.node][c.remote_name] for c in layout.copies}
    base = args.output.parent.absolute()
    todo, problems = check_copies(base, layout.copies, data, force=args.force)
    if problems:
        raise ImportRefusedError(problems)
    text = _spec_text(args, draft, layout, dt.datetime.now(dt.UTC))
    written = Written()
    write_copies(base, todo, data, written)
    loaded = put_spec(args.output, text, written)
    for note in draft.notes:
        to_stderr(f"note: {note}")
    for warning in loaded.warnings:
        to_stderr(warning.render())
    _report(args, draft, layout)
    return EXIT_OK


def _report(args: argparse.Namespace, draft: Draft, layout: CertLayout) -> None:
    db = sum(1 for n in draft.nodes if n.role is NodeRole.DATABASE)
    clients = len(draft.nodes) - db
    master = draft.node(draft.master)
    lines = [
        f"Imported cluster {draft.cluster}: {db} database node(s), {clients} client node(s), "
        f"master {master.name} ({master.address}).",
    ]
    width = max(len(n.name) for n in draft.nodes)
    lines += [
        f"  {n.name:<{width}}  {n.address:<15}  {n.seen_as:<18}  {n.found}" for n in draft.nodes
    ]
    certs = sum(1 for c in layout.copies if not c.is_key)
    keys = sum(1 for c in layout.copies if c.is_key)
    where = "one cluster-wide block" if layout.shared else "a block per node"
    kept = (
        f", {keys} key file(s) in keys/ (0600)"
        if args.fetch_keys
        else ("; the keys stay on the nodes (key_on_node)")
    )
    lines += [
        f"Wrote {args.output}: certificates as {where}; {certs} certificate file(s) in "
        f"certs/{kept}.",
        f"Review it and commit it; `reconcile plan {args.output} --detailed-exitcode` "
        "exits 0 when nothing differs.",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
