"""What a proxy host may be, and what to say of one that is no host: one check for a host written in the file
and for one filled in from `${...}` (whose value is never shown)."""

from __future__ import annotations

import ipaddress
import re

#: One label of a host name: letters, digits, `-` (not first or last) and `_` (seen in real DNS names).
_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_MAX_HOST_NAME = 253
#: `[address]` or `[address]:port`, as a URL writes an IPv6 address.
_BRACKETED = re.compile(r"\[([^\[\]]*)\](?::([0-9]{1,5}))?\Z")
#: `host:port`.
_WITH_PORT = re.compile(r"(.+):([0-9]{1,5})\Z")
_HOST_CHARACTERS = re.compile(r"[A-Za-z0-9._-]")
_SPELLED = {" ": "a space", "/": "a '/'", "@": "an '@'", ":": "a ':'", ",": "a comma"}


def valid_host(host: str) -> bool:
    """Whether `host` is an IP address (v4 or v6) or a host name: dot-separated labels of letters, digits, `-`
    and `_`, at most 253 characters, the last label not all digits; a name in another script counts as its
    IDNA (punycode) form."""
    if len(host) <= _MAX_HOST_NAME and _HOST_NAME.fullmatch(
        host
    ):  # most hosts: a name, found without raising
        last = host.removesuffix(".").rpartition(".")[2]
        if not last.isdigit():
            return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if not host.isascii():
        import unicodedata  # only for a host in another script

        # Letters, digits and combining marks only: IDNA would drop an invisible character (U+200B) silently.
        if not all(char.isalnum() or char in "-._" or unicodedata.category(char)[0] == "M" for char in host):
            return False
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return False
    if len(host.removesuffix(".")) > _MAX_HOST_NAME or not _HOST_NAME.fullmatch(host):
        return False
    return not host.removesuffix(".").rpartition(".")[2].isdigit()  # 1.2.3.999 is no address, nor a name


def _host_of_url(url: str) -> str:
    """What to write instead of a proxy URL pasted as a host: its host, and its port apart."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host:
        return "write only the proxy's host name or IP address here, and its port as port:"
    said = f"write host: {host}"
    return said + (f" and port: {port}" if port else "") + " (the protocol goes in protocol:)"


def _write(host: str, port: str | None) -> str:
    return f"write host: {host}" + (f" and port: {port}" if port else "")


def host_problem(host: str, shown: bool) -> str | None:
    """What is wrong with a proxy host, as the end of `proxy.host ...`; None for a valid host.

    `shown`: the host was written in the file, and the fix may quote its parts (`write host: h and port: 8080`).
    Otherwise it came from `${...}` and may be secret: the slips a variable often holds (a URL, a port, brackets)
    are named without the value, and anything else is `is not a valid host name or IP address`."""
    if valid_host(host):
        return None
    if "://" in host:
        fix = (
            _host_of_url(host)
            if shown
            else "write the host alone, its port as port: and its scheme as protocol:"
        )
        return f"is a URL: {fix}"
    bracketed = _BRACKETED.match(host)
    if bracketed and valid_host(bracketed.group(1)):
        fix = _write(*bracketed.groups()) if shown else "write the address without them"
        return f"is an address in brackets: {fix}"
    with_port = _WITH_PORT.match(host)
    if with_port and valid_host(with_port.group(1)):
        fix = _write(*with_port.groups()) if shown else "write the host alone and its port as port:"
        return f"ends in a port: {fix}"
    odd = next((char for char in host if not (_HOST_CHARACTERS.match(char) or not char.isascii())), None)
    if shown and odd is not None:
        spelled = _SPELLED.get(odd) or f"the character {odd!r}"
        return (
            f"holds {spelled}, which no host has: write a host name (letters, digits, '-', '_' and dots) "
            "or an IP address"
        )
    return "is not a valid host name or IP address"
