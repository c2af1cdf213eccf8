"""The API's address and key, checked before anything is sent: a bad one is one line and exit 1, never a traceback
half-way through a run."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from reconciler.errors import UsageError
from reconciler.secrets.redaction import Redactor
from reconciler.urls import has_userinfo, url_passwords, without_userinfo

if TYPE_CHECKING:
    import ssl

DEFAULT_API_URL = "https://api.postpress.ai/api/v1"
#: The path every base URL of the API ends in: a URL without it reaches a server, not the API, and every account
#: would fail with a 404 as if it did not exist.
API_PATH = "/api/v1"
#: The flag that accepts another path, for a proxy in front of the API that rewrites paths.
ANY_PATH_FLAG = "--any-api-path"


def _describe_control(character: str) -> str:
    names = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}
    return names.get(character, f"the control character U+{ord(character):04X}")


def check_api_key(api_key: str) -> str:
    """The key from POSTPRESS_API_KEY, or UsageError saying what is wrong with it (never the key itself)."""
    if not api_key:
        raise UsageError("POSTPRESS_API_KEY is not set; the API key is read from the environment only")
    for position, character in enumerate(api_key):
        if ord(character) < 0x20 or 0x7F <= ord(character) <= 0x9F:
            where = "at its end" if position == len(api_key) - 1 else f"at position {position + 1}"
            raise UsageError(
                f"POSTPRESS_API_KEY holds {_describe_control(character)} {where} "
                "(a common slip when pasting a CI secret); remove it"
            )
    if api_key != api_key.strip():
        raise UsageError("POSTPRESS_API_KEY starts or ends with spaces; remove them")
    if not api_key.isascii():
        raise UsageError("POSTPRESS_API_KEY holds non-ASCII characters; an HTTP header cannot carry them")
    return api_key


def tls_context(ca_bundle: str) -> ssl.SSLContext:
    """The system's trusted roots plus the certificates of `ca_bundle` (a PEM file): added, not replaced."""
    import ssl  # ~10 ms: only when a bundle is given (libcurl does the TLS of the requests)

    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=ca_bundle)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise UsageError(
            f"--ca-bundle {ca_bundle}: not a readable PEM file of CA certificates ({reason})"
        ) from None
    return context


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_url(url: str, redactor: Redactor, any_path: bool = False) -> list[str]:
    """Raise UsageError unless `url` is an http(s) URL with a host, a valid port and a path ending in `/api/v1`
    (any path with `any_path`); return warnings."""
    shown = without_userinfo(url)  # messages never repeat a user or password given in the URL
    if has_userinfo(url):  # before parsing: a parser's message would quote a part of a password holding '/'
        raise UsageError(
            "--api-url must not hold a user or password (an '@' in it: write %40 for one that is neither); "
            "the API key comes from POSTPRESS_API_KEY"
        )
    for password in url_passwords(url):  # a `?password=` is sent: an answer quoting it is redacted
        redactor.register(password)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port out of range or not a number
        host = parts.hostname
    except ValueError as exc:
        raise UsageError(f"--api-url {shown!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(f"--api-url {shown!r} is not an http(s) URL with a host, e.g. {DEFAULT_API_URL}")
    if port == 0:
        raise UsageError(f"--api-url {shown!r}: port 0 cannot be connected to")
    if not any_path and not parts.path.rstrip("/").endswith(API_PATH):
        if parts.path.strip("/"):
            expected = f"a path that ends in {API_PATH}, e.g. {DEFAULT_API_URL}"
        else:
            expected = f"{parts.scheme}://{parts.netloc}{API_PATH}"
        raise UsageError(
            f"--api-url {shown!r} does not end in {API_PATH}: the API's base URL is {expected} "
            f"({ANY_PATH_FLAG} accepts another path, for a proxy that rewrites paths)"
        )
    if parts.scheme == "http" and not _is_loopback(host):
        return [f"--api-url uses plain http:// to {host}: the API key would travel in clear"]
    return []
