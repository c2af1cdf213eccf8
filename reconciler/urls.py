"""URLs as they may be shown: never with a password.

A state location (`postgresql://user:PASSWORD@host/db`) or an API URL (`https://user:PASSWORD@host/api/v1`) can
carry a password in its userinfo or in a `password=` / `sslpassword=` query parameter. `display_url` gives the
form every message, plan and report shows (user kept, password replaced); `redact_credentials` does the same
for every URL inside a longer text, such as a log line.
"""

from __future__ import annotations

import re

REDACTED = "***"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: A `%` not followed by two hex digits: a URL that libpq and others refuse, quoting the part that holds it.
BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
#: `scheme://user:` followed by the password, up to the last `@` before the authority's end (`/` or a space).
_USERINFO_IN_TEXT = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^/\s]*@")
_PASSWORD_PARAMETER = re.compile(r"(?P<head>[?&](?:ssl)?password=)[^&#\s]*", re.IGNORECASE)


def display_url(url: str) -> str:
    """`url` with the password of its userinfo, and of any `password=` parameter, replaced by `***`.

    A URL holding a malformed percent escape is shown without its userinfo at all: which part of it is the
    password is then a guess.
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return _PASSWORD_PARAMETER.sub(_redact_parameter, url)
    rest = url[scheme.end() :]
    authority_end = rest.find("/")
    if authority_end < 0:
        authority_end = len(rest)
    authority, tail = rest[:authority_end], rest[authority_end:]
    at = authority.rfind("@")
    if at >= 0:
        userinfo, host = authority[:at], authority[at + 1 :]
        user, colon, _ = userinfo.partition(":")
        shown_userinfo = "" if BAD_PERCENT.search(url) else f"{user}:{REDACTED}@" if colon else f"{user}@"
        authority = shown_userinfo + host
    return url[: scheme.end()] + _PASSWORD_PARAMETER.sub(_redact_parameter, authority + tail)


def redact_credentials(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***` (users, hosts and paths kept)."""
    if "://" not in text and "password=" not in text.lower():  # the common case: a log line with no URL
        return text
    text = _USERINFO_IN_TEXT.sub(lambda match: match["head"] + REDACTED + "@", text)
    return _PASSWORD_PARAMETER.sub(_redact_parameter, text)


def _redact_parameter(match: re.Match[str]) -> str:
    return match["head"] + REDACTED
