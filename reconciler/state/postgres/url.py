"""A `postgresql://` state URL: what libpq connects to, and the schema and workspace our parameters name."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg import pq

from reconciler.errors import StateError
from reconciler.suggestions import suggestion
from reconciler.urls import BAD_PERCENT, display_url

#: PostgreSQL's identifier limit (NAMEDATALEN - 1): a longer schema name is cut silently, so two long names
#: would share tables while their locks (keyed on the whole name) differ.
MAX_IDENTIFIER_BYTES = 63


def split_url(url: str) -> tuple[str, str, str]:
    """(connection URL without our parameters, schema, workspace); StateError for a URL libpq would misread."""
    shown = display_url(url)
    if BAD_PERCENT.search(url):
        raise StateError(
            f"the state URL {shown} is malformed: a '%' not followed by two hex digits (write %25)"
        )
    # The user and password end at the last '@'; libpq ends them at the first '@' or '/': a URL they read
    # apart would send part of the password as a host, a port or a database name (and quote it back).
    userinfo = url.split("://", 1)[1].rpartition("@")[0]
    if any(character in userinfo for character in "@/?#"):
        raise StateError(
            f"the state URL {shown} is malformed: percent-encode '@', '/', '?' and '#' in its user and password "
            "(%40, %2F, %3F, %23), and '@' after the host (%40)"
        )
    try:
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))  # `schema=` is refused, not ignored
    except ValueError as exc:
        raise StateError(f"the state URL {shown} is malformed: {exc}") from None
    check_parameters(url, list(params))
    schema = params.pop("schema", "reconciler")
    workspace = params.pop("workspace", "default")
    if not schema or "\0" in schema or len(schema.encode()) > MAX_IDENTIFIER_BYTES:
        raise StateError(
            f"the state URL {shown} names a schema PostgreSQL cannot hold: a schema name is 1 to "
            f"{MAX_IDENTIFIER_BYTES} bytes without NUL (this one: {len(schema.encode())} bytes"
            f"{', with NUL' if chr(0) in schema else ''})"
        )
    if not workspace or "\0" in workspace:
        raise StateError(f"the state URL {shown} names an empty workspace or one holding NUL")
    libpq_params = {key: value for key, value in params.items() if value}
    return urlunsplit(parts._replace(query=urlencode(libpq_params))), schema, workspace


#: The URL's own parameters, read by reconciler and never passed to libpq.
OWN_PARAMETERS = ("schema", "workspace")


def known_parameters() -> list[str]:
    """Every parameter a state URL may carry: ours, then each connection keyword of the libpq in use (its
    `PQconndefaults`, so a newer libpq's keywords are known as soon as it is)."""
    libpq = sorted(option.keyword.decode() for option in pq.Conninfo.get_defaults())
    return [*OWN_PARAMETERS, *(keyword for keyword in libpq if keyword not in OWN_PARAMETERS)]


def check_parameters(url: str, names: list[str]) -> None:
    """StateError naming the first parameter of `names` (the URL's, decoded) that neither reconciler nor libpq
    knows, with the closest known one: libpq would refuse it only when connecting, as "cannot connect". The URL is
    shown without its query, where a misspelt `pasword=` would keep its value."""
    known = known_parameters()
    for name in names:
        if name in known:
            continue
        named = repr(name[:100]) + suggestion(name[:100], known, limit=1)
        shown = display_url(url.split("?", 1)[0].split("#", 1)[0])
        raise StateError(
            f"the state URL {shown} has an unknown parameter {named}: it takes schema, workspace and libpq's "
            "connection parameters (sslmode, connect_timeout, application_name, ...)"
        )
