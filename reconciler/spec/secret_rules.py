"""Secrets and credentials in a spec: none written in it, none shown in a message.

The literal-secret scan over the raw document (secret-looking keys, inline private
keys), the text to redact from every message, and the one rule about credentials:
exactly one way to log in to the MMP. Pure (no I/O); messages never echo a secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from reconciler.common.diagnostics import Diagnostic
from reconciler.spec.model import ClusterSpec
from reconciler.spec.yaml_source import FieldPath, YamlDocument

# Mapping keys that hold (or look like they hold) a literal secret.
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token")
_SECRET_EXACT = frozenset({"pass", "pwd", "pw"})
_SECRET_ALLOWED = frozenset({"password_env"})


def is_secret_key(key: str) -> bool:
    low = key.lower()
    if low in _SECRET_ALLOWED:
        return False
    return low in _SECRET_EXACT or any(word in low for word in _SECRET_WORDS)


def secret_paths(data: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    """Paths of every mapping key (at any depth) that looks like a literal secret."""
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, key)
            if is_secret_key(key):
                yield child
            else:
                yield from secret_paths(value, child)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from secret_paths(value, (*path, index))


def _private_key_paths(data: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _private_key_paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _private_key_paths(value, (*path, index))
    elif isinstance(data, str) and "PRIVATE KEY-----" in data:
        yield path


def secret_values(data: Any) -> set[str]:
    """Text that must never appear in a message: values under secret-looking keys and
    inline private keys (all their lines). Short values (< 6 characters) are left out so
    that redacting them cannot garble messages; they are never echoed anyway."""
    found: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif value is not None:
            found.add(str(value))

    for path in secret_paths(data):
        node: Any = data
        for part in path:
            node = node[part]
        collect(node)
    for path in _private_key_paths(data):
        node = data
        for part in path:
            node = node[part]
        found.add(node)
        found.update(line.strip() for line in node.splitlines())
    return {text for text in found if len(text) >= 6}


def redact(diagnostics: list[Diagnostic], secrets: set[str]) -> list[Diagnostic]:
    """Replace every secret text in the messages by ``<redacted>`` (defence in depth)."""
    if not secrets:
        return diagnostics
    ordered = sorted(secrets, key=len, reverse=True)
    out = []
    for diag in diagnostics:
        message = diag.message
        for text in ordered:
            message = message.replace(text, "<redacted>")
        out.append(diag if message == diag.message else replace(diag, message=message))
    return out


def looks_inline(text: str) -> bool:
    """A value pasted where a file name belongs (a PEM block, several lines)."""
    return "\n" in text or "-----BEGIN" in text or "PRIVATE KEY" in text


def check_secrets(doc: YamlDocument) -> list[Diagnostic]:
    """Literal passwords (or inline private keys) anywhere in the raw document. Never echoes."""
    out = [
        doc.error(
            path,
            f"'{path[-1]}' looks like a literal secret; secrets must not be written in the "
            "spec (the value is not shown here). Put the MMP password in an environment "
            "variable and name it with ssh.password_env, or use ssh.key or ssh.agent: true",
        )
        for path in secret_paths(doc.data)
    ]
    out.extend(
        doc.error(
            path,
            "holds an inline private key (not shown); name a key file instead and keep "
            "the key out of the spec",
        )
        for path in _private_key_paths(doc.data)
    )
    return out


def check_ssh_auth(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    ssh = spec.ssh
    chosen = [
        name
        for name, on in (
            ("password_env", ssh.password_env is not None),
            ("key", ssh.key is not None),
            ("agent: true", ssh.agent),
        )
        if on
    ]
    if len(chosen) == 1:
        return []
    found = "none" if not chosen else " and ".join(chosen)
    return [
        doc.error(
            ("ssh",),
            "ssh needs exactly one way to log in to the MMP: password_env (the name of an "
            "environment variable holding the password), key (a private key file) or "
            f"agent: true; found {found}",
        )
    ]
