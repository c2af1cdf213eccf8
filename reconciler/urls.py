"""URLs as they may be shown: never with a password.

A state location (`postgresql://user:PASSWORD@host/db`) or an API URL (`https://user:PASSWORD@host/api/v1`) can
carry a password in its userinfo, or in a query parameter that libpq reads as one (`password=`, `sslpassword=`,
...: PASSWORD_KEYWORDS). Whatever the spelling, the userinfo is everything between `://` and the last `@` (a
password may hold `/`, `?`, `#` and `@` unencoded), and a parameter is a password when its name, percent-decoded
and case-folded, is one of PASSWORD_KEYWORDS (libpq decodes `pass%77ord` to `password`); its value runs to the
next `&` (libpq reads a `#` as part of it). `display_url` gives the form every message, plan and report shows
(user kept, passwords replaced); `redact_credentials` does the same for every URL inside a longer text, such as a
log line; `url_passwords` lists the passwords themselves, for redacting a message that quotes one.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

REDACTED = "***"

#: libpq's connection keywords whose value is a password or a key: those libpq itself marks password-like
#: (`PQconndefaults`, dispchar "*": password, sslpassword, oauth_client_secret), and the SCRAM keys, which stand
#: for a password. Matched after percent-decoding and case-folding: libpq's own match is exact, but a password
#: spelled `PassWord=` is still a password the user meant to give.
PASSWORD_KEYWORDS = frozenset(
    ("password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key")
)

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: A `%` not followed by two hex digits: a URL that libpq and others refuse, quoting the part that holds it.
BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: In a longer text: `scheme://user:` and the password, up to the last `@` before the next whitespace.
_USERINFO_IN_TEXT = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:@\s]*:)\S*@")
#: A query parameter: `?` or `&`, its name, `=`, and its value up to the next `&` or whitespace.
_PARAMETER = re.compile(r"(?P<head>[?&](?P<key>[^=&\s]*)=)(?P<value>[^&\s]*)")


def is_password_keyword(name: str) -> bool:
    """Whether a query parameter of this name (as written in a URL) carries a password."""
    return unquote(name).strip().casefold() in PASSWORD_KEYWORDS


def display_url(url: str) -> str:
    """`url` with the password of its userinfo, and of every password parameter, replaced by `***`.

    A URL holding a malformed percent escape is shown without its userinfo at all: which part of it is the
    password is then a guess.
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return _redact_parameters(url)
    rest = url[scheme.end() :]
    userinfo, at, after = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        shown_userinfo = "" if BAD_PERCENT.search(url) else f"{user}:{REDACTED}@" if colon else f"{user}@"
        rest = shown_userinfo + after
    return url[: scheme.end()] + _redact_parameters(rest)


def without_userinfo(url: str) -> str:
    """`url` without its user and password (everything from `://` to the last `@`), and with every password
    parameter replaced by `***`."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return _redact_parameters(url)
    return url[: scheme.end()] + _redact_parameters(url[scheme.end() :].rpartition("@")[2])


def has_userinfo(url: str) -> bool:
    """Whether `url` has anything between `://` and an `@`."""
    scheme = _SCHEME.match(url)
    return scheme is not None and "@" in url[scheme.end() :]


def url_passwords(url: str) -> list[str]:
    """Every password `url` holds, as written and percent-decoded, longest first: its userinfo's (after the first
    `:`, up to the last `@`) and the value of each password parameter."""
    scheme = _SCHEME.match(url)
    rest = url[scheme.end() :] if scheme else url
    found: list[str] = []
    userinfo = rest.rpartition("@")[0] if scheme else ""
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    found += [match["value"] for match in _PARAMETER.finditer(rest) if is_password_keyword(match["key"])]
    forms = {form for value in found for form in (value, unquote(value)) if form}
    return sorted(forms, key=len, reverse=True)


def redact_credentials(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***` (users, hosts and paths kept)."""
    if "://" in text:
        text = _USERINFO_IN_TEXT.sub(lambda match: match["head"] + REDACTED + "@", text)
    return _redact_parameters(text)


def _redact_parameters(text: str) -> str:
    if "=" not in text:  # the common case: a log line with no parameter
        return text
    return _PARAMETER.sub(_redact_parameter, text)


def _redact_parameter(match: re.Match[str]) -> str:
    return match["head"] + REDACTED if is_password_keyword(match["key"]) else match.group()
