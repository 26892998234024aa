"""The MMP admin commands a lab node understands (one command line in, text and exit status out)."""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cmslab import backup, node_ops, node_status, pki
from cmslab.node import LabNode
from cmslab.state import ROLE_CLIENT, ROLE_DATABASE
from cmslab.status_text import render

Ask = Callable[[str], Awaitable[str]]  # write a prompt, read one line of the answer
Write = Callable[[str], Awaitable[None]]

HELP = """\
database cluster status
database cluster localnode <a|b|c|d>
database cluster certs <server_key> <server_crt> <client_key> <client_crt> <ca_crt>
database cluster certs <client_key> <client_crt> <ca_crt>
database cluster initialize
database cluster join <master address>
database cluster connect <address>
database cluster remove
database cluster upgrade_schema
database cluster clear error
backup snapshot <name>
backup list
backup rollback <name>
pki csr <basename> CN:<common name>
pki list
pki inspect <file>
syslog
syslog follow
hostname
help
"""

USAGE = {
    "localnode": "database cluster localnode <a|b|c|d>",
    "certs": "database cluster certs <server_key> <server_crt> <client_key> <client_crt> <ca_crt>"
    " | database cluster certs <client_key> <client_crt> <ca_crt>",
    "join": "database cluster join <master address>",
    "connect": "database cluster connect <address>",
    "csr": "pki csr <basename> CN:<common name>",
    "snapshot": "backup snapshot <name> (<name>: 1 to 64 letters, digits, '.', '_' or '-',"
    " starting with a letter or digit)",
    "inspect": "pki inspect <file>",
}

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_BASENAME = 64  # `pki csr` basename


@dataclass
class Result:
    text: str
    status: int = 0


def ok(text: str = "SUCCESS") -> Result:
    return Result(text if text.endswith("\n") else text + "\n", 0)


def fail(reason: str) -> Result:
    return Result(f"FAILURE: {reason}\n", 1)


def usage(key: str) -> Result:
    return fail(f"usage: {USAGE[key]}")


async def run_command(node: LabNode, line: str, ask: Ask, write: Write) -> Result:
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if not words:
        return Result("", 0)
    unknown = fail(f"unknown command '{line.strip()}' (type 'help')")
    head = words[0]
    if head == "help" and len(words) == 1:
        return ok(HELP)
    if head == "hostname" and len(words) == 1:
        return ok(node.name)
    if head == "syslog":
        if len(words) == 1:
            return ok("\n".join(node.syslog.tail(100)))
        if words[1:] == ["follow"]:
            await follow_syslog(node, write)
            return Result("", 0)
        return unknown
    if head == "pki":
        return await pki_command(node, words[1:], unknown)
    if head == "backup":
        return await backup_command(node, words[1:], unknown)
    if words[:2] == ["database", "cluster"] and len(words) >= 3:
        return await cluster_command(node, words[2:], ask, unknown)
    return unknown


async def follow_syslog(node: LabNode, write: Write) -> None:
    path = node.syslog.path
    with path.open() as f:
        lines = f.readlines()[-10:]
        await write("".join(lines))
        while True:
            chunk = f.read()
            if chunk:
                await write(chunk)
            else:
                await write("")
                await asyncio.sleep(0.2)


async def pki_command(node: LabNode, args: list[str], unknown: Result) -> Result:
    if not args:
        return unknown
    if args[0] == "list":
        if len(args) != 1:
            return unknown
        names = sorted(p.name for p in node.upload.iterdir() if p.is_file())
        return ok("\n".join(names) if names else "No files")
    if args[0] == "inspect":
        if len(args) != 2:
            return usage("inspect")
        path = node.upload / args[1]
        if not SAFE_NAME.match(args[1]) or not path.is_file():
            return fail(f"no such file '{args[1]}'")
        try:
            return ok("\n".join(pki.describe(path)))
        except ValueError:
            return fail(f"'{args[1]}' is not a certificate")
    if args[0] == "csr":
        if len(args) != 3 or not args[2].startswith("CN:") or len(args[2]) < 4:
            return usage("csr")
        base, cn = args[1], args[2][3:]
        if not SAFE_NAME.match(base) or len(base) > MAX_BASENAME:
            return fail(f"invalid file name '{base}'")
        if len(cn) > pki.MAX_CN or not cn.isprintable():
            return fail(f"invalid common name '{cn}': 1 to {pki.MAX_CN} printable characters")
        for taken in (node.upload / f"{base}.key", node.upload / f"{base}.csr"):
            if taken.exists():
                return fail(f"file '{taken.name}' already exists")
        key = pki.new_key()
        pki.write_private(node.upload / f"{base}.key", pki.key_pem(key))
        pki.write_public(node.upload / f"{base}.csr", pki.make_csr(key, cn))
        return ok(f"Created key file {base}.key and CSR {base}.csr\nSUCCESS")
    return unknown


async def backup_command(node: LabNode, args: list[str], unknown: Result) -> Result:
    if args == ["list"]:
        return Result("".join(f"{name}\n" for name in backup.names(node)), 0)
    if args[:1] == ["snapshot"]:
        if len(args) != 2 or not backup.valid_name(args[1]):
            return usage("snapshot")
        try:
            await backup.snapshot(node, args[1])
        except backup.Refused as exc:
            return fail(str(exc))
        return ok()
    if args[:1] == ["rollback"]:
        return fail("backup rollback is not supported by cmslab")
    return unknown


def check_upload(node: LabNode, names: list[str]) -> str | None:
    """None when every named file is uploaded and readable as what its position needs."""
    kinds = ["key", "cert", "key", "cert", "cert"] if len(names) == 5 else ["key", "cert", "cert"]
    for name, kind in zip(names, kinds, strict=True):
        path = node.upload / name
        if not SAFE_NAME.match(name) or not path.is_file():
            return f"file '{name}' not found (upload it by SFTP first)"
        data = path.read_bytes()
        try:
            if kind == "cert":
                pki.load_cert(path)
            else:
                serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            return f"'{name}' is not a valid {'certificate' if kind == 'cert' else 'private key'}"
    return None


def _client_cn(node: LabNode, names: list[str]) -> str | None:
    cert = pki.load_cert(node.upload / names[-2])
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


async def cluster_command(node: LabNode, args: list[str], ask: Ask, unknown: Result) -> Result:
    verb = args[0]
    rest = args[1:]
    st = node.state
    clustered = st.role is not None
    if verb == "status" and not rest:
        return Result(render(await node_status.status_view(node), node.lab.cfg.wording), 0)
    if verb == "localnode":
        if len(rest) != 1 or rest[0] not in ("a", "b", "c", "d"):
            return usage("localnode")
        if clustered:
            return fail("cannot change the interface while clustered")
        st.interface = rest[0]
        node.save()
        return ok()
    if verb == "certs":
        if len(rest) not in (3, 5):
            return usage("certs")
        if clustered:
            return fail(
                "cannot change certificates while clustered: run 'database cluster remove' first"
            )
        if node.busy():
            return fail("another database cluster command is in progress")
        problem = check_upload(node, rest)
        if problem:
            return fail(problem)
        if _client_cn(node, rest) != "postgres":
            return fail("the client certificate's CN must be 'postgres'")
        st.certs = list(rest)
        node.save()
        return ok()
    if verb == "clear" and rest == ["error"]:
        st.error = None
        node.save()
        return ok()
    if verb in ("initialize", "join", "connect", "remove", "upgrade_schema"):
        return await clustering(node, verb, rest, ask)
    return unknown


async def clustering(node: LabNode, verb: str, rest: list[str], ask: Ask) -> Result:
    if verb in ("initialize", "remove", "upgrade_schema") and rest:
        return fail(f"usage: database cluster {verb}")
    if verb in ("join", "connect") and len(rest) != 1:
        return usage(verb)
    if node.busy():
        return fail("another database cluster command is in progress")
    # No await between the check and the claim: two commands arriving together cannot both
    # pass (two joins 3 ms apart once destroyed a node's database).
    node.claimed_by = verb
    try:
        return await _clustering(node, verb, rest, ask)
    finally:
        node.claimed_by = None


async def _clustering(node: LabNode, verb: str, rest: list[str], ask: Ask) -> Result:
    st = node.state
    if st.error and verb != "remove":
        return fail(f"node is in error ({st.error}): run 'database cluster clear error' first")
    command = " ".join(["database", "cluster", verb, *rest])
    if verb == "remove":
        if st.role is None:
            return fail("this node is not in a database cluster")
        answer = await ask(
            "This node will leave the database cluster.\nAre you sure you want to continue? (Y/n) "
        )
        if answer.strip() != "Y":
            return fail("not confirmed: nothing was changed")
        await node_ops.start_op(node, command, partial(node_ops.do_remove, node))
        return ok()
    if verb == "upgrade_schema":
        if st.role != ROLE_DATABASE:
            return fail("this node does not host a cluster database")
        await node_ops.start_op(node, command, partial(node_ops.do_upgrade_schema, node))
        return ok()
    if st.role is not None:
        return fail(
            "this node is already in a database cluster: run 'database cluster remove' first"
        )
    if verb == "connect":
        if not st.certs:
            return fail("no certificates: run 'database cluster certs ...' first")
        if problem := check_upload(node, st.certs):
            return fail(problem)
        node.install_tls()
        if reason := await node_ops.check_master(node, rest[0]):
            return fail(reason)
        st.role = ROLE_CLIENT
        st.node_in_use = rest[0]
        st.known_members = []
        st.last_command = command
        st.last_result = "Success"
        node.save()
        node.syslog.log("dbcluster_watcher", f"Connected to the database cluster at {rest[0]}")
        return ok()
    if not st.interface:
        return fail("no interface: run 'database cluster localnode <a|b|c|d>' first")
    if not st.certs or len(st.certs) != 5:
        return fail("a database node needs 5 certificate files: run 'database cluster certs ...'")
    if problem := check_upload(node, st.certs):
        return fail(problem)
    if verb == "initialize":
        await node_ops.start_op(node, command, partial(node_ops.do_initialize, node))
        return ok()
    target = rest[0]
    if target == node.address:
        return fail("cannot join this node's own address")
    node.install_tls()
    if reason := await node_ops.check_master(node, target):
        return fail(reason)
    await node_ops.start_op(node, command, partial(node_ops.do_join, node, target))
    return ok()


__all__ = ["ROLE_CLIENT", "Result", "run_command"]
