"""The flags of `reconcile import`: their parsers (refused with one line) and registration.

``--host ADDR[:PORT]`` (an IPv6 address as ``[ADDR]:PORT``, or bare without a port),
``--name ADDR=NAME``, ``--cluster NAME`` and ``--password-env VAR`` are checked by
argparse before anything is read (:mod:`reconciler.cli.argument_types` style: exit 1,
one line). Importing this module loads no SSH library.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from reconciler.cli.argument_types import positive_seconds, tcp_port
from reconciler.plan.adoption_names import NAME
from reconciler.spec.identity_rules import is_valid_host

DEFAULT_SSH_PORT = 22
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")  # as SshSpec.password_env


def host_port(text: str) -> tuple[str, int]:
    """``ADDR``, ``ADDR:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address -> (host, port)."""
    host, port = text.strip(), str(DEFAULT_SSH_PORT)
    if host.startswith("["):
        close = host.find("]")
        rest = host[close + 1 :] if close > 0 else "?"
        if rest and not rest.startswith(":"):
            raise argparse.ArgumentTypeError(f"expected [ADDRESS]:PORT, not {text!r}")
        host, port = host[1:close], rest[1:] or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    if not host or not is_valid_host(host):
        raise argparse.ArgumentTypeError(f"not an IP address or host name: {text!r}")
    return host, tcp_port(port)


def node_name(text: str) -> tuple[str, str]:
    """``ADDR=NAME`` -> (address, name)."""
    address, sep, name = text.partition("=")
    if not sep or not address.strip() or not is_valid_host(address.strip()):
        raise argparse.ArgumentTypeError(f"expected ADDRESS=NAME, not {text!r}")
    if not NAME.match(name):
        raise argparse.ArgumentTypeError(
            f"node name {name!r}: letters, digits, '_', '.', '-', at most 63 characters"
        )
    return address.strip(), name


def cluster_name(text: str) -> str:
    if not NAME.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: letters, digits, '_', '.', '-', at most 63 characters"
        )
    return text


def env_name(text: str) -> str:
    if not _ENV_NAME.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: the NAME of an environment variable (upper case, digits, '_'), "
            "never the password itself"
        )
    return text


def add_import_arguments(p: argparse.ArgumentParser) -> Any:
    p.add_argument(
        "--host",
        dest="hosts",
        action="append",
        required=True,
        type=host_port,
        metavar="ADDR[:PORT]",
        help="a node's MMP (SSH port default 22); every member its status lists is read too, "
        "on the same port unless given with --host itself",
    )
    p.add_argument("--user", required=True, help="the MMP admin user")
    p.add_argument(
        "--password-env",
        required=True,
        type=env_name,
        metavar="VAR",
        help="environment variable holding the MMP password (written to the spec as "
        "ssh.password_env)",
    )
    p.add_argument(
        "--known-hosts",
        required=True,
        type=Path,
        metavar="FILE",
        help="OpenSSH known_hosts file the host keys are checked against (written to the "
        "spec relative to its folder)",
    )
    p.add_argument(
        "--cluster", required=True, type=cluster_name, metavar="NAME", help="the spec's cluster"
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="SPEC",
        help="the spec to write (validated before it is put in place); certs/ and keys/ "
        "go next to it",
    )
    p.add_argument(
        "--name",
        dest="names",
        action="append",
        default=[],
        type=node_name,
        metavar="ADDR=NAME",
        help="name the node at ADDR (default: its MMP hostname, else cms-<address>)",
    )
    p.add_argument(
        "--fetch-keys",
        action="store_true",
        help="copy the private keys into keys/ (0600); without it they stay on the nodes "
        "(key_on_node)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing SPEC and files")
    p.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="add unknown host keys to the known_hosts file (a changed key is always refused)",
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="SSH connect and per-command timeout (default 10 s to connect, 60 s a command)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (stderr)")
    return p
