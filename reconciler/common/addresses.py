"""One address normalisation for the whole code base (pure).

Member addresses are printed by the MMP as IPv4, IPv6 (compressed or not, with or
without brackets) or host names (any case, with or without a trailing dot). Two
spellings name the same node exactly when their normalised forms are equal; the
normalised form is used to compare, never shown to users.
"""

from __future__ import annotations

import ipaddress


def normalize_address(address: str) -> str:
    """Canonical form used to compare addresses: IPv6 compressed, names lower case."""
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text.lower().rstrip(".")


def same_address(a: str, b: str) -> bool:
    return normalize_address(a) == normalize_address(b)


def is_ip_address(address: str) -> bool:
    """True for an IPv4 or IPv6 literal (brackets allowed), False for a host name."""
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
