"""The checks a schema cannot express, and the building of `AccountSpec`s from a loaded file.

The checks run whatever the schema found, so that one pass reports every mistake of an account: each check
looks only at values of the type the schema asks for, and leaves a value of another type to the schema's
message (one mistake, one message).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from reconciler import packaged
from reconciler.config.fastcheck import ACCOUNT_KEYS, PROVIDERS
from reconciler.config.hosts import host_problem
from reconciler.config.secretfiles import SecretFiles
from reconciler.config.yamlpos import Mark, YMap
from reconciler.errors import Problem, brief
from reconciler.model import SYNC_PROVIDERS, AccountSpec, ResyncSpec
from reconciler.secrets import ReferenceError_, Secret, Unresolved
from reconciler.secrets.redaction import Redactor
from reconciler.secrets.references import (
    Resolver,
    per_account,
    referenced_names,
    references,
    shell_variable,
)

_PROXY_KEYS = ("protocol", "host", "port", "username", "password")

#: Prefixes of the environment variables a configuration may not read (compared without regard to case, as
#: Windows does): reconciler's own credentials (POSTPRESS_API_KEY, RECONCILER_STATE with its database password,
#: RECONCILER_FINGERPRINT_KEY) and the CI's (GITHUB_TOKEN, ACTIONS_RUNTIME_TOKEN, ACTIONS_ID_TOKEN_REQUEST_*,
#: RUNNER_*). A proxy value is sent to the API and from there to the proxy, and shows in a plan only as
#: `(sensitive)`: without this, a pull request that looks harmless could send them to a host of its choosing.
REFUSED_VARIABLE_PREFIXES = ("POSTPRESS_", "RECONCILER_", "GITHUB_", "ACTIONS_", "RUNNER_")
_REFUSED_LIST = ", ".join(prefix + "*" for prefix in REFUSED_VARIABLE_PREFIXES)

Path = tuple[Any, ...]
#: Reports a problem: where, what (after the account's name), the path of the value (`AccountBuilder.error`).
Report = Callable[[Mark, str, Path], None]

#: What `_resolved` gives for a value whose problem it reported.
_FAILED = object()
_NAME_ONLY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: An environment variable's name by convention (POSIX: upper-case letters, digits and `_`).
_ENV_STYLE = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
#: The proxy keys whose strings may hold `${...}` (`protocol` has its own message: not one of the options).
_REFERENCE_KEYS = frozenset(("host", "username", "password"))


def shown_variable(password: str) -> bool:
    """Whether a password is a shell-style `$NAME` written as a variable's name (`$PROXY_PW`): its message
    shows it (a name, not a password), where any other password is redacted from every message."""
    name = shell_variable(password)
    return name is not None and _ENV_STYLE.match(name) is not None


def shell_slip(key: str, name: str) -> str:
    """The message for `proxy.KEY: $NAME`, a shell-style variable that would be sent as its own text. The name
    is shown, but for a password whose "name" is not written as a variable's (`$Tr0ub4dor` may be the password
    itself)."""
    if key == "host":
        return f"proxy.host: ${name} looks like a shell variable: write ${{{name}}} (a host has no $)"
    if key == "password" and not _ENV_STYLE.match(name):
        return (
            "proxy.password looks like a shell variable ($ and a name): write the variable as ${NAME} "
            "(or start it with $$ for a literal $)"
        )
    return (
        f"proxy.{key}: ${name} looks like a shell variable: write ${{{name}}} (or $${name} for a literal $)"
    )


@functools.cache
def iso_countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes, shipped with the package (no network)."""
    text = packaged.read_text("config/iso3166-alpha2.txt", "ascii")
    return frozenset(text.split())


def refused_variable(name: str) -> bool:
    """Whether `${name}` names reconciler's own or the CI's credentials (REFUSED_VARIABLE_PREFIXES)."""
    return name.upper().startswith(REFUSED_VARIABLE_PREFIXES)


def _dotted(path: Path) -> str:
    return ".".join(str(part) for part in path)


def _owner(path: Path) -> str:
    """Whom a message is about, from the path of the value: `account 'acc_1'` or `defaults`.

    Made only for a message: building the name for every account cost more than any check of it."""
    return f"account {brief(path[1], 260)}" if path[0] == "accounts" else str(path[0])


# long: one account built from its YAML in steps that share the resolver, the redactor and the problem lists
class AccountBuilder:
    """Checks one file's accounts and builds their `AccountSpec`s, collecting problems instead of stopping.

    `unset` collects the names of the unset environment variables the built accounts need.
    """

    def __init__(
        self,
        file: str,
        document: YMap,
        environ: Mapping[str, str],
        redactor: Redactor,
        files: SecretFiles | None = None,
    ) -> None:
        self.file = file
        self.environ = environ
        self.redactor = redactor  # told every secret resolved
        self.resolver = Resolver(file, environ, files)
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.unset: set[str] = set()
        self.countries = iso_countries()
        defaults = document.get("defaults")
        default_proxy = defaults.get("proxy") if isinstance(defaults, YMap) else None
        # Resolved once, so a mistake in the defaults is reported once, not once per account; a value naming
        # `$account` is checked once here and resolved for each account (`_per_account`).
        self.default_keys: frozenset[str] = frozenset()
        self.default_proxy: dict[str, Any] = {}
        self.default_per_account: dict[str, str] = {}
        if isinstance(default_proxy, YMap):
            self.default_keys = frozenset(default_proxy)
            self.default_proxy = self._proxy_values(default_proxy, ("defaults", "proxy"))
            for key in _PROXY_KEYS:
                value = default_proxy.get(key)
                if isinstance(value, str) and key in self.default_proxy and per_account(value):
                    self.default_per_account[key] = value
                    del self.default_proxy[key]

    def error(self, mark: Mark, message: str, path: Path) -> None:
        """A problem of the account (or the defaults) `path` starts with; `message` follows its name."""
        message = f"{_owner(path)}: {message}"
        self.problems.append(Problem(self.file, mark[0], mark[1], message, path=_dotted(path)))

    def build(
        self, account_id: str, body: Any, key_mark: Mark, schema_valid: bool = True
    ) -> AccountSpec | None:
        """Check one account; its spec, or None when it has a problem (`schema_valid` False counts as one)."""
        if not isinstance(body, YMap):
            return None  # the schema says what an account is
        before = len(self.problems)
        path: Path = ("accounts", account_id)
        provider = body.get("provider")
        has_proxy = "proxy" in body
        has_managed = "country" in body or "ip" in body
        if has_proxy and has_managed:
            later = "country" if "country" in body else "ip"
            self.error(
                body.key_mark(later),
                f"declares both a custom proxy and a managed one ({later!r}); keep one",
                (*path, later),
            )
        if not (has_proxy or has_managed or "resync" in body) and body.keys() <= ACCOUNT_KEYS:
            # With an unknown key (`contry: US`), the schema's "did you mean" is the one message.
            self.error(key_mark, "declares nothing; give it a proxy, a country/ip or a resync", path)
        settings: dict[str, Any] | None = None
        if has_proxy:
            proxy = self._proxy(body["proxy"], body.key_mark("proxy"), (*path, "proxy"), body)
            settings = None if proxy is None else {"proxy": proxy}
        elif has_managed:
            settings = _managed(body, path, self.countries, self.error)
        times = _resync(body, provider, path, self.error) if "resync" in body else None
        if len(self.problems) > before or not schema_valid:
            return None
        resync = None
        if times is not None:
            declared: YMap = body["resync"]
            resync = ResyncSpec(
                generation=declared["generation"],
                chunk_size=declared.get("chunk_size"),
                partial=declared.get("partial"),
                linkedin_product=declared.get("linkedin_product"),
                after_ms=times[0],
                before_ms=times[1],
            )
        labels = dict(body.get("labels") or {})
        return AccountSpec(
            account_id, provider, labels, settings, resync, self.file, key_mark[0], key_mark[1]
        )

    def _proxy_values(self, proxy: YMap, path: Path) -> dict[str, Any]:
        """The known keys of one proxy mapping, each string resolved: a `Secret` where a reference was used
        and for a password, an `Unresolved` where a referenced variable is unset (or a secrets file not
        decrypted), plain text otherwise."""
        values: dict[str, Any] = {}
        account_id = path[1] if path[0] == "accounts" else None
        for key in _PROXY_KEYS:
            if key not in proxy:
                continue
            value = proxy[key]
            if isinstance(value, str):
                resolved = self._resolved(key, value, proxy.value_mark(key), path, account_id)
                if resolved is _FAILED:
                    continue
                value = resolved
            values[key] = value
        return values

    def _resolved(self, key: str, value: str, mark: Mark, path: Path, account_id: str | None) -> Any:
        """One proxy string resolved (see `_proxy_values`), or _FAILED once its problem is reported."""
        shell = shell_variable(value, anywhere=key == "host") if key in _REFERENCE_KEYS else None
        if shell is not None:
            self.error(mark, shell_slip(key, shell), (*path, key))
            return _FAILED
        try:
            resolved, referenced = self.resolver.resolve(value, account_id)
        except ReferenceError_ as exc:
            self.error(mark, f"proxy.{key}: {exc}", (*path, key))
            return _FAILED
        if referenced and not self._referenced_ok(key, value, resolved, mark, (*path, key)):
            return _FAILED
        problem = host_problem(value, shown=True) if key == "host" and value and not referenced else None
        if problem is not None:
            self.error(mark, f"proxy.host {problem}", (*path, key))
            return _FAILED
        if key == "password" and not referenced:
            self.warnings.append(
                Problem(
                    self.file,
                    mark[0],
                    mark[1],
                    f"{_owner(path)}: plaintext proxy password; use ${{VAR}} instead",
                    "warning",
                    _dotted((*path, key)),
                )
            )
        if isinstance(resolved, str) and (referenced or key == "password"):
            return self._secret(resolved)
        return resolved

    def _secret(self, plaintext: str) -> Secret:
        """A resolved secret, made known to the run's redactor."""
        self.redactor.register(plaintext)
        return Secret(plaintext)

    def _per_account(self, account_id: str, proxy_mark: Mark, path: Path, keys: list[str]) -> dict[str, Any]:
        """The `keys` of `defaults.proxy` that name `$account`, resolved for one account; a problem (the
        account's entry missing from the file) is placed at the account's proxy and names the default."""
        values: dict[str, Any] = {}
        for key in keys:
            text = self.default_per_account[key]
            try:
                resolved, _ = self.resolver.resolve(text, account_id)
            except ReferenceError_ as exc:
                self.error(proxy_mark, f"proxy.{key} (from defaults.proxy.{key}): {exc}", (*path, key))
                continue
            problem = (
                host_problem(resolved, shown=False) if key == "host" and isinstance(resolved, str) else None
            )
            if problem is not None:
                self.error(
                    proxy_mark,
                    f"proxy.host (from defaults.proxy.host), filled in from a secrets file, {problem} "
                    "(the value is not shown: it may be secret)",
                    (*path, key),
                )
                continue
            values[key] = self._secret(resolved) if isinstance(resolved, str) else resolved
        return values

    def _referenced_ok(self, key: str, text: str, resolved: str | Unresolved, mark: Mark, path: Path) -> bool:
        """Check a proxy value written with `${...}`: it names no variable of REFUSED_VARIABLE_PREFIXES, and a
        host resolved from variables is a host (checked once the variables are set: at apply, and wherever
        they are set). A message names the variables (without `${}`: the text of a password is redacted from
        messages), never what they hold."""
        refused = [name for name in referenced_names(text) if refused_variable(name)]
        if refused:
            self.error(
                mark,
                f"proxy.{key}: the variable {refused[0]} is refused: {_REFUSED_LIST} variables hold reconciler's "
                "or the CI's own credentials, which are never sent to a proxy; use a variable of your own",
                path,
            )
            return False
        problem = host_problem(resolved, shown=False) if key == "host" and isinstance(resolved, str) else None
        if problem is not None:
            names = [
                reference if isinstance(reference, str) else f"{reference.alias}.{'.'.join(reference.keys)}"
                for reference in references(text)
            ]
            unique = list(dict.fromkeys(names))
            variables = f"reference{'s' if len(unique) > 1 else ''} {', '.join(unique)}"
            if all(_NAME_ONLY.match(name) for name in unique):
                variables = "variable" + variables[len("reference") :]
            self.error(
                mark,
                f"proxy.host, filled in from the {variables}, {problem} (the value is not shown: it may be secret)",
                path,
            )
            return False
        return True

    def _proxy(self, proxy: Any, proxy_mark: Mark, path: Path, beside: YMap) -> dict[str, Any] | None:
        """The account's proxy settings; `beside` is the account, where a proxy key written one level too
        shallow lands (the schema's message says so, and it is not missing as well)."""
        if not isinstance(proxy, YMap):
            return None  # the schema's message
        merged = dict(self.default_proxy)
        if self.default_per_account:  # the account's own keys win: only the others are looked up
            keys = [key for key in self.default_per_account if key not in proxy]
            merged.update(self._per_account(path[1], proxy_mark, path, keys))
        merged.update(self._proxy_values(proxy, path))
        for required in ("host", "port"):
            if required not in proxy and required not in self.default_keys and required not in beside:
                self.error(proxy_mark, f"proxy needs {required!r}", path)
        result = {key: merged[key] for key in _PROXY_KEYS if key in merged}
        for value in result.values():
            if isinstance(value, Unresolved):
                self.unset.update(value.names)
        return result


def _managed(body: YMap, path: Path, countries: frozenset[str], error: Report) -> dict[str, Any]:
    """The managed proxy an account asks for (`country`, `ip`), checked; `countries`: the ISO 3166-1 codes."""
    settings: dict[str, Any] = {}
    country = body.get("country")
    if type(country) is str and country in countries:  # as most files spell it: "US"
        settings["country"] = country
    elif isinstance(country, str) and len(country) == 2 and country.isascii() and country.isalpha():
        code = country.upper()
        if code not in countries:
            from reconciler.config.countries import not_a_code  # only for this message

            error(body.value_mark("country"), not_a_code(country), (*path, "country"))
        settings["country"] = code
    ip = body.get("ip")
    if isinstance(ip, str):
        try:
            settings["ip"] = str(ipaddress.ip_address(ip))
        except ValueError:
            error(body.value_mark("ip"), f"ip {brief(ip)} is not a valid IP address", (*path, "ip"))
    return settings


def _resync(body: YMap, provider: Any, path: Path, error: Report) -> tuple[int | None, int | None] | None:
    """Check a resync; its (after, before) in epoch milliseconds, or None when it is not a mapping."""
    resync = body["resync"]
    if not isinstance(resync, YMap):
        return None
    mark = body.key_mark("resync")
    path = (*path, "resync")
    # A provider the schema refuses (`LINKDIN`) has its own message; checks that depend on it wait.
    provider_known = provider is None or (type(provider) is str and provider in PROVIDERS)
    if provider is None:
        error(mark, "resync needs 'provider: LINKEDIN' or 'provider: TELEGRAM'", path)
    elif provider_known and provider not in SYNC_PROVIDERS:
        error(
            mark,
            f"the sync route does not support {provider} accounts (LinkedIn and Telegram only)",
            path,
        )
    for linkedin_only in ("partial", "linkedin_product"):
        if linkedin_only in resync and provider_known and provider != "LINKEDIN":
            error(
                resync.key_mark(linkedin_only),
                f"resync.{linkedin_only} is LinkedIn only",
                (*path, linkedin_only),
            )
    after = _time(resync, "after", path, error)
    before = _time(resync, "before", path, error)
    if after is not None and before is not None and after >= before:
        error(
            resync.value_mark("before"),
            "resync.before must be later than resync.after",
            (*path, "before"),
        )
    return after, before


def _time(resync: YMap, key: str, path: Path, error: Report) -> int | None:
    """`resync.after` or `resync.before` in epoch milliseconds, checked; None when absent or not valid."""
    if key not in resync:
        return None
    value = resync[key]
    if type(value) is int:
        if value < 0:
            error(resync.value_mark(key), f"resync.{key} must not be negative", (*path, key))
        return value
    if not isinstance(value, str):
        return None  # the schema's message
    try:
        return epoch_milliseconds(value)
    except ValueError as exc:
        error(resync.value_mark(key), f"resync.{key}: {exc}", (*path, key))
        return None


def epoch_milliseconds(text: str) -> int:
    """ISO 8601 with a time zone (or a bare date, taken as UTC midnight) to epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{brief(text)} is not an ISO 8601 time or epoch milliseconds") from None
    if len(text) == 10:
        moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    elif moment.tzinfo is None:
        raise ValueError(f"{brief(text)} has no time zone; add 'Z' or an offset such as '+02:00'")
    return int(moment.timestamp() * 1000)
