"""What ``WEALIST_ENVIRONMENT=production`` refuses: the development defaults a real deployment must replace.

The defaults of every settings class are the dev stack's (localhost servers, the dev S3 keys, the web
client's dev origins), so that ``nox -s up`` needs no configuration. In production each of them would be
a silent failure or a hole, so a workload started there with one of them stops at once and names them all.

A field says what production asks of it with ``json_schema_extra``:

- :data:`REQUIRED_IN_PRODUCTION`: it must be set explicitly, and not to its development value (the
  servers' URLs and addresses, the S3 credentials, the listening address);
- :data:`PUBLIC_IN_PRODUCTION`: a URL (or a list of them) that browsers or Google reach, which must
  not name a loopback host or a placeholder domain, and as a list must not be empty or ``*``;
- :data:`OFF_IN_PRODUCTION`: a switch for development only (the test login, the dev OAuth path).
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

REQUIRED_IN_PRODUCTION: dict[str, Any] = {"production": "required"}
PUBLIC_IN_PRODUCTION: dict[str, Any] = {"production": "public"}
OFF_IN_PRODUCTION: dict[str, Any] = {"production": "off"}
# Hosts that only ever mean "this machine" or "nothing real yet".
_LOCAL_NAMES = ("localhost", "localhost.localdomain")
_PLACEHOLDER_SUFFIXES = (".example", ".invalid", ".local", "example.com", "example.org", "example.net")

SettingsT = TypeVar("SettingsT", bound=BaseModel)


def variable_of(name: str, info: FieldInfo) -> str:
    """The environment variable a settings field is read from (its first alias, else ``WEALIST_*``)."""
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        if isinstance(first, str):
            return first
    return f"WEALIST_{name.upper()}"


def _rule(info: FieldInfo) -> str | None:
    extra = info.json_schema_extra
    return str(extra.get("production")) if isinstance(extra, dict) and "production" in extra else None


def _unsafe_host(url: str) -> str | None:
    """Why ``url`` cannot be a public address, or None when it can."""
    if url.strip() == "*":
        return "'*' allows every origin"
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        return f"{url!r} is not an absolute URL"
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return f"{url!r} names this machine"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return f"{url!r} names this machine"
    except ValueError:
        pass
    if host.endswith(_PLACEHOLDER_SUFFIXES):
        return f"{url!r} is a placeholder domain"
    return None


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def production_problems(settings: BaseModel) -> list[str]:
    """Every development default ``settings`` still holds, one sentence each, by variable name."""
    problems = []
    for name, info in type(settings).model_fields.items():
        rule = _rule(info)
        if rule is None:
            continue
        variable = variable_of(name, info)
        value = getattr(settings, name)
        if rule == "required":
            if name not in settings.model_fields_set:
                problems.append(f"{variable} is not set (its default is the dev stack's)")
            elif _plain(value) == _plain(info.get_default(call_default_factory=True)):
                problems.append(f"{variable} is set to the dev stack's value")
        elif rule == "off":
            if value:
                problems.append(f"{variable} is on: it is for development and tests only")
        elif rule == "public":
            urls = value if isinstance(value, list) else [value]
            if isinstance(value, list) and not value:
                problems.append(f"{variable} is empty")
            for url in urls:
                reason = None if url is None else _unsafe_host(str(url))
                if reason is not None:
                    problems.append(f"{variable}: {reason}")
    return problems


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """The workload's settings from its environment; on a refusal, the reasons on stderr and exit 2.

    A traceback of pydantic's would bury the one line an operator needs: which variables to set.
    """
    try:
        return settings_class()
    except ValidationError as error:
        workload = (
            settings_class.model_fields["workload"].default
            if "workload" in settings_class.model_fields
            else "?"
        )
        lines = [f"{workload}: refusing to start, the settings are not valid:"]
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "settings"
            message = str(problem["msg"]).removeprefix("Value error, ")
            lines += [f"  - {where}: {message}" if where != "settings" else f"  - {message}"]
        sys.stderr.write("\n".join(lines) + "\n")
        raise SystemExit(2) from None
