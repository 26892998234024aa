"""Files `cmslab up` writes: CA and certificates, host keys, known_hosts, password, lab.yaml.

Everything is created once and reused on the next `up` (persistent host keys and certificates).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import asyncssh

from cmslab import pki
from cmslab.config import DEFAULT_DB_PORT, LabConfig, LabPaths

CLIENT_CERT = "certs/client.crt"
CLIENT_KEY = "keys/client.key"
CA_CERT = "ca/ca.crt"
CA_KEY = "keys/ca.key"


def server_cert(name: str) -> str:
    return f"certs/{name}-server.crt"


def server_key(name: str) -> str:
    return f"keys/{name}-server.key"


def ensure_pki(paths: LabPaths, cfg: LabConfig) -> None:
    root = paths.root
    paths.keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.keys_dir, 0o700)
    if (root / CA_CERT).exists() and (root / CA_KEY).exists():
        ca_key = pki.load_key(root / CA_KEY)
        ca_cert = pki.load_cert(root / CA_CERT)
    else:
        ca_key, ca_cert = pki.make_ca()
        pki.write_private(root / CA_KEY, pki.key_pem(ca_key))
        pki.write_public(root / CA_CERT, pki.cert_pem(ca_cert))
    if not (root / CLIENT_CERT).exists():
        key, cert = pki.issue(ca_key, ca_cert, "postgres")
        pki.write_private(root / CLIENT_KEY, pki.key_pem(key))
        pki.write_public(root / CLIENT_CERT, pki.cert_pem(cert))
    for node in cfg.nodes:
        if not (root / server_cert(node.name)).exists():
            key, cert = pki.issue(ca_key, ca_cert, node.name)
            pki.write_private(root / server_key(node.name), pki.key_pem(key))
            pki.write_public(root / server_cert(node.name), pki.cert_pem(cert))


def host_key_path(paths: LabPaths, name: str) -> Path:
    return paths.hostkeys_dir / f"{name}.key"


def ensure_host_keys(paths: LabPaths, cfg: LabConfig) -> None:
    paths.hostkeys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.hostkeys_dir, 0o700)
    lines = []
    for node in cfg.nodes:
        path = host_key_path(paths, node.name)
        if path.exists():
            key = asyncssh.read_private_key(str(path))
        else:
            key = asyncssh.generate_private_key("ssh-ed25519")
            pki.write_private(path, key.export_private_key())
        pub = key.export_public_key().decode().split()
        host = node.address if node.ssh_port == 22 else f"[{node.address}]:{node.ssh_port}"
        lines.append(f"{host} {pub[0]} {pub[1]}\n")
    paths.known_hosts.write_text("".join(lines))


def ensure_password(paths: LabPaths) -> str:
    if not paths.password_file.exists():
        pki.write_private(paths.password_file, (secrets.token_urlsafe(18) + "\n").encode())
    return read_password(paths)


def read_password(paths: LabPaths) -> str:
    return paths.password_file.read_text().strip()


def render_spec(paths: LabPaths, cfg: LabConfig) -> str:
    first = cfg.nodes[0]
    out = [
        "# Reconciler spec for the cmslab in this directory (written by `cmslab up`).",
        "# Before use, set the MMP password:",
        f"#   export CMSLAB_PASSWORD=$(cat {paths.root.resolve() / 'admin-password'})",
        "# Paths are relative to this file.",
        "version: 1",
        "cluster: cmslab",
        "interface: a",
        f"master: {first.name}",
    ]
    if first.db_port != DEFAULT_DB_PORT:  # CMS itself always uses 5432
        out.append(f"database_port: {first.db_port}")
    out += [
        "nodes:",
    ]
    for node in cfg.nodes:
        out += [
            f"  - name: {node.name}",
            f"    address: {node.address}",
            f"    mmp_port: {node.ssh_port}",
            "    certificates:",
            f"      ca: {CA_CERT}",
            "      server:",
            f"        cert: {server_cert(node.name)}",
            f"        key: {server_key(node.name)}",
            "      client:",
            f"        cert: {CLIENT_CERT}",
            f"        key: {CLIENT_KEY}",
        ]
    out += [
        "certificates:",
        f"  ca: {CA_CERT}",
        "  client:",
        f"    cert: {CLIENT_CERT}",
        f"    key: {CLIENT_KEY}",
        "ssh:",
        f"  user: {cfg.admin_user}",
        "  password_env: CMSLAB_PASSWORD",
        "  known_hosts: known_hosts",
        f"  port: {first.ssh_port}",
        "",
    ]
    return "\n".join(out)


def write_all(paths: LabPaths, cfg: LabConfig) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    ensure_pki(paths, cfg)
    ensure_host_keys(paths, cfg)
    ensure_password(paths)
    paths.lab_yaml.write_text(render_spec(paths, cfg))
