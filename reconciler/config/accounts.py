"""The checks a schema cannot express, and the building of `AccountSpec`s from a schema-valid file."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any

from reconciler.config.yamlpos import YMap
from reconciler.errors import Problem, brief
from reconciler.model import SYNC_PROVIDERS, AccountSpec, ResyncSpec
from reconciler.secrets import ReferenceError_, Secret, resolve_references

# Codes people write that ISO 3166-1 spells otherwise.
_COUNTRY_HINTS = {"UK": "GB", "EL": "GR", "EN": "GB"}
_PROXY_KEYS = ("protocol", "host", "port", "username", "password")


@functools.cache
def iso_countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes, shipped with the package (no network)."""
    text = resources.files("reconciler").joinpath("config/iso3166-alpha2.txt").read_text("ascii")
    return frozenset(text.split())


class AccountBuilder:
    """Turns one schema-valid file's accounts into `AccountSpec`s, collecting problems instead of stopping."""

    def __init__(self, file: str, document: YMap, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        defaults = document.get("defaults") or {}
        self.default_proxy: YMap | None = defaults.get("proxy") if isinstance(defaults, YMap) else None

    def error(self, mark: tuple[int, int], message: str) -> None:
        self.problems.append(Problem(self.file, mark[0], mark[1], message))

    def build(self, account_id: str, body: YMap, key_mark: tuple[int, int]) -> AccountSpec | None:
        before = len(self.problems)
        provider = body.get("provider")
        has_proxy = "proxy" in body
        has_managed = "country" in body or "ip" in body
        where = f"account {account_id!r}"
        if has_proxy and has_managed:
            later = "country" if "country" in body else "ip"
            self.error(
                body.key_mark(later),
                f"{where}: declares both a custom proxy and a managed one ({later!r}); keep one",
            )
        if not (has_proxy or has_managed or "resync" in body):
            self.error(key_mark, f"{where}: declares nothing; give it a proxy, a country/ip or a resync")
        settings: dict[str, Any] | None = None
        if has_proxy:
            settings = {"proxy": self._proxy(where, body["proxy"], body.key_mark("proxy"))}
        elif has_managed:
            settings = self._managed(where, body)
        resync = self._resync(where, body, provider) if "resync" in body else None
        if len(self.problems) > before:
            return None
        labels = dict(body.get("labels") or {})
        return AccountSpec(
            account_id, provider, labels, settings, resync, self.file, key_mark[0], key_mark[1]
        )

    def _proxy(self, where: str, proxy: YMap, proxy_mark: tuple[int, int]) -> dict[str, Any]:
        merged: dict[str, tuple[Any, tuple[int, int]]] = {}
        for source in (self.default_proxy, proxy):
            if source:
                for key, value in source.items():
                    merged[key] = (value, source.value_mark(key))
        for required in ("host", "port"):
            if required not in merged:
                self.error(proxy_mark, f"{where}: proxy needs {required!r}")
        result: dict[str, Any] = {}
        for key in _PROXY_KEYS:
            if key not in merged:
                continue
            value, mark = merged[key]
            if isinstance(value, str):
                try:
                    resolved, referenced = resolve_references(value, self.environ)
                except ReferenceError_ as exc:
                    self.error(mark, f"{where}: proxy.{key}: {exc}")
                    continue
                if key == "password" and not referenced:
                    self.warnings.append(
                        Problem(
                            self.file,
                            mark[0],
                            mark[1],
                            f"{where}: plaintext proxy password; use ${{VAR}} instead",
                            "warning",
                        )
                    )
                value = Secret(resolved) if (referenced or key == "password") else resolved
            result[key] = value
        return result

    def _managed(self, where: str, body: YMap) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        if "country" in body:
            code = body["country"].upper()
            if code not in iso_countries():
                hint = _COUNTRY_HINTS.get(code)
                suggestion = f"; did you mean {hint!r}?" if hint else ""
                self.error(
                    body.value_mark("country"),
                    f"{where}: country {brief(body['country'])} is not an ISO 3166-1 alpha-2 code{suggestion}",
                )
            settings["country"] = code
        if "ip" in body:
            try:
                settings["ip"] = str(ipaddress.ip_address(body["ip"]))
            except ValueError:
                self.error(
                    body.value_mark("ip"), f"{where}: ip {brief(body['ip'])} is not a valid IP address"
                )
        return settings

    def _resync(self, where: str, body: YMap, provider: str | None) -> ResyncSpec | None:
        resync: YMap = body["resync"]
        mark = body.key_mark("resync")
        if provider is None:
            self.error(mark, f"{where}: resync needs 'provider: LINKEDIN' or 'provider: TELEGRAM'")
        elif provider not in SYNC_PROVIDERS:
            self.error(
                mark,
                f"{where}: the sync route does not support {provider} accounts (LinkedIn and Telegram only)",
            )
        for linkedin_only in ("partial", "linkedin_product"):
            if linkedin_only in resync and provider != "LINKEDIN":
                self.error(
                    resync.key_mark(linkedin_only), f"{where}: resync.{linkedin_only} is LinkedIn only"
                )
        after = self._time(where, resync, "after")
        before = self._time(where, resync, "before")
        if after is not None and before is not None and after >= before:
            self.error(resync.value_mark("before"), f"{where}: resync.before must be later than resync.after")
        return ResyncSpec(
            generation=resync["generation"],
            chunk_size=resync.get("chunk_size"),
            partial=resync.get("partial"),
            linkedin_product=resync.get("linkedin_product"),
            after_ms=after,
            before_ms=before,
        )

    def _time(self, where: str, resync: YMap, key: str) -> int | None:
        if key not in resync:
            return None
        value = resync[key]
        if isinstance(value, int):
            if value < 0:
                self.error(resync.value_mark(key), f"{where}: resync.{key} must not be negative")
            return value
        try:
            return epoch_milliseconds(value)
        except ValueError as exc:
            self.error(resync.value_mark(key), f"{where}: resync.{key}: {exc}")
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
