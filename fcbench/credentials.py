"""Alibaba Cloud credentials for the fc target and `fcbench deploy`: the default chain, found once.

Key names: `resolve_credentials` (the one entry), `Credentials`, `redact`. The chain is the
``alibabacloud-credentials`` package's, in its order, with its providers for the files and roles,
but read from the environment at call time (the package reads it once, at import). One
difference, on purpose: the ECS RAM role is asked for only when ``ALIBABA_CLOUD_ECS_METADATA``
names the role, so nothing waits on (or reaches) the metadata service off ECS. Values are never
printed: `Credentials` masks its repr, messages pass through `redact`, and the SDK's own loggers
get a masking filter once credentials are found.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .secrets import MASK, looks_secret
from .signing import read_harness_key

__all__ = ["ENV_ACCESS_KEY_ID", "ENV_ACCESS_KEY_SECRET", "ENV_SECURITY_TOKEN", "Credentials",
           "redact", "resolve_credentials"]

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"

_HOW_TO_SET = f"""\
Set one of them, for example:
  export {ENV_ACCESS_KEY_ID}=LTAI... {ENV_ACCESS_KEY_SECRET}=...   \
(and {ENV_SECURITY_TOKEN}=... for STS)
  or write ~/.alibabacloud/credentials.ini (ALIBABA_CLOUD_PROFILE picks the section):
      [default]
      type = access_key
      access_key_id = LTAI...
      access_key_secret = ...
  or run `aliyun configure` (the Alibaba Cloud CLI writes ~/.aliyun/config.json)
  or on ECS: export ALIBABA_CLOUD_ECS_METADATA=<the instance's RAM role name>
See docs/fc.md, "Credentials"."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """What signs FC requests, and where it came from.

    Attributes:
        access_key_id / access_key_secret / security_token: the values (never print them).
        source: where they were found, e.g. ``environment variables`` or
            ``/home/me/.alibabacloud/credentials.ini [default]``.
        provider: the ``alibabacloud-credentials`` provider that found them (it refreshes STS
            tokens of RAM roles); None for explicit keys and the harness's own key.
    """

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None
    source: str = ""
    provider: Any = field(default=None, compare=False)

    def secret_values(self) -> tuple[str, ...]:
        """The values a message must never show (for `redact`)."""
        return tuple(v for v in (self.access_key_secret, self.security_token,
                                 self.access_key_id) if v)

    def sdk_credential(self) -> Any:
        """A credentials client for ``alibabacloud_tea_openapi``'s ``Config(credential=...)``:
        asked on every request, so a RAM role's STS token is refreshed before it expires."""
        from alibabacloud_credentials.client import Client
        from alibabacloud_credentials.provider import (
            StaticAKCredentialsProvider,
            StaticSTSCredentialsProvider,
        )

        provider = self.provider
        if provider is None:
            provider = StaticSTSCredentialsProvider(
                access_key_id=self.access_key_id, access_key_secret=self.access_key_secret,
                security_token=self.security_token) if self.security_token else \
                StaticAKCredentialsProvider(access_key_id=self.access_key_id,
                                            access_key_secret=self.access_key_secret)
        return Client(provider=provider)

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r}, access_key_id={MASK!r})"

    __str__ = __repr__


def redact(text: str, values: tuple[str, ...] = (),
           environ: Mapping[str, str] | None = None) -> str:
    """`text` with `values`, and the values of secret-looking environment variables, masked."""
    env = os.environ if environ is None else environ
    hidden = {v for v in values if v and len(v) >= 4}
    hidden |= {v for k, v in env.items() if looks_secret(k) and v and len(v) >= 4}
    for value in sorted(hidden, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def resolve_credentials(*, access_key_id: str | None = None,
                        access_key_secret: str | None = None,
                        security_token: str | None = None, harness: str | None = None,
                        environ: Mapping[str, str] | None = None) -> Credentials:
    """The credentials to sign FC 3.0 calls with: the arguments when given, else the first link
    of the default chain that has some — environment variables, OIDC (RRSA), the Alibaba Cloud
    CLI's ``~/.aliyun/config.json``, the credentials file (``ALIBABA_CLOUD_CREDENTIALS_FILE``,
    else ``~/.alibabacloud/credentials.ini`` or ``~/.alibabacloud/credentials``), the ECS RAM role
    (``ALIBABA_CLOUD_ECS_METADATA``), a credentials URI (``ALIBABA_CLOUD_CREDENTIALS_URI``).

    Args:
        access_key_id / access_key_secret / security_token: explicit credentials (both of the
            first two, or neither).
        harness: the endpoint is the local harness at this ``host:port``: sign with the key
            the harness wrote to its key file (`fcbench.signing.read_harness_key`), never with
            the default chain, so the user's cloud keys never reach the harness.
        environ: the environment to read (default ``os.environ``).

    Raises:
        UsageError: nothing was found; one message lists where it looked and how to set each
            (for the harness: where its key file should be). No value is ever part of a
            message.
    """
    env = os.environ if environ is None else environ
    if access_key_id or access_key_secret:
        if not (access_key_id and access_key_secret):
            raise UsageError("give both an access key id and an access key secret, or neither "
                             "(then the default chain is used)")
        given = Credentials(access_key_id, access_key_secret, security_token or None,
                            source="arguments")
        _mask_sdk_logs(given.secret_values())
        return given
    if harness is not None:
        key = read_harness_key(harness)
        found = Credentials(key.access_key_id, key.access_key_secret, None,
                            source=f"the harness's key file for {harness}")
        _mask_sdk_logs(found.secret_values())
        return found
    looked: list[str] = []
    for name, attempt in _chain(env):
        try:
            found = attempt()
        except Exception as exc:  # noqa: BLE001 - each link's failure is reported, not raised
            found = f"failed: {redact(str(exc), environ=env)}"
        if isinstance(found, Credentials):
            _mask_sdk_logs(found.secret_values())
            return found
        looked.append(f"  - {name}: {found}")
    raise UsageError("no Alibaba Cloud credentials found for Function Compute. Looked in, in "
                     "order:\n" + "\n".join(looked) + "\n" + _HOW_TO_SET)


# ---- the chain -------------------------------------------------------------------------------
# Each link returns Credentials, or a short sentence saying why it had none.

def _chain(env: Mapping[str, str]) -> list[tuple[str, Callable[[], Credentials | str]]]:
    return [
        ("environment variables", lambda: _from_env(env)),
        ("OIDC role (RRSA)", lambda: _from_oidc(env)),
        ("Alibaba Cloud CLI profile", lambda: _from_cli_profile(env)),
        ("credentials file", lambda: _from_file(env)),
        ("ECS RAM role", lambda: _from_ecs(env)),
        ("credentials URI", lambda: _from_uri(env)),
    ]


def _fetch(provider: Any, source: str) -> Credentials:
    cred = provider.get_credentials()
    key_id, secret = cred.get_access_key_id(), cred.get_access_key_secret()
    if not (key_id and secret):
        raise UsageError("it gave an empty access key")
    return Credentials(key_id, secret, cred.get_security_token() or None, source=source,
                       provider=provider)


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def _from_env(env: Mapping[str, str]) -> Credentials | str:
    key_id, secret = env.get(ENV_ACCESS_KEY_ID), env.get(ENV_ACCESS_KEY_SECRET)
    if key_id and secret:
        return Credentials(key_id, secret, env.get(ENV_SECURITY_TOKEN) or None,
                           source="environment variables")
    if key_id or secret:
        missing = ENV_ACCESS_KEY_SECRET if key_id else ENV_ACCESS_KEY_ID
        other = ENV_ACCESS_KEY_ID if key_id else ENV_ACCESS_KEY_SECRET
        return f"{other} is set but {missing} is not"
    return f"{ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET} are not set"


def _from_oidc(env: Mapping[str, str]) -> Credentials | str:
    names = ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", "ALIBABA_CLOUD_ROLE_ARN",
             "ALIBABA_CLOUD_OIDC_PROVIDER_ARN")
    missing = [n for n in names if not env.get(n)]
    if missing:
        return f"{', '.join(missing)} not set"
    from alibabacloud_credentials.provider import OIDCRoleArnCredentialsProvider

    provider = OIDCRoleArnCredentialsProvider(
        oidc_token_file_path=env[names[0]], role_arn=env[names[1]],
        oidc_provider_arn=env[names[2]],
        role_session_name=env.get("ALIBABA_CLOUD_ROLE_SESSION_NAME") or None)
    return _fetch(provider, f"OIDC role {env[names[1]]}")


def _from_cli_profile(env: Mapping[str, str]) -> Credentials | str:
    if (env.get("ALIBABA_CLOUD_CLI_PROFILE_DISABLED") or "").lower() == "true":
        return "ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true"
    path = _home(env) / ".aliyun" / "config.json"
    if not path.is_file():
        return f"{path} does not exist"
    from alibabacloud_credentials.provider import CLIProfileCredentialsProvider

    profile = env.get("ALIBABA_CLOUD_PROFILE") or None
    provider = CLIProfileCredentialsProvider(profile_file=str(path), profile_name=profile)
    return _fetch(provider, f"{path} [{profile or 'current'}]")


def _from_file(env: Mapping[str, str]) -> Credentials | str:
    given = env.get("ALIBABA_CLOUD_CREDENTIALS_FILE")
    home = _home(env) / ".alibabacloud"
    # credentials.ini is this package's default; `credentials` the other Alibaba Cloud SDKs'
    candidates = [Path(given)] if given else [home / "credentials.ini", home / "credentials"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return " and ".join(str(p) for p in candidates) + " do not exist" \
            if len(candidates) > 1 else f"{candidates[0]} does not exist"
    from alibabacloud_credentials.provider import ProfileCredentialsProvider

    profile = env.get("ALIBABA_CLOUD_PROFILE") or "default"
    provider = ProfileCredentialsProvider(profile_file=str(path), profile_name=profile)
    try:
        return _fetch(provider, f"{path} [{profile}]")
    except Exception as exc:  # noqa: BLE001 - say which section of which file
        raise UsageError(f"section [{profile}] of {path}: {exc}") from None


def _from_ecs(env: Mapping[str, str]) -> Credentials | str:
    if (env.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED") or "").lower() == "true":
        return "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true"
    role = env.get("ALIBABA_CLOUD_ECS_METADATA")
    if not role:
        return "ALIBABA_CLOUD_ECS_METADATA (the RAM role name) is not set"
    from alibabacloud_credentials.provider import EcsRamRoleCredentialsProvider

    provider = EcsRamRoleCredentialsProvider(
        role_name=role, async_update_enabled=False,
        disable_imds_v1=(env.get("ALIBABA_CLOUD_IMDSV1_DISABLED") or "").lower() == "true")
    return _fetch(provider, f"ECS RAM role {role}")


def _from_uri(env: Mapping[str, str]) -> Credentials | str:
    uri = env.get("ALIBABA_CLOUD_CREDENTIALS_URI")
    if not uri:
        return "ALIBABA_CLOUD_CREDENTIALS_URI is not set"
    from alibabacloud_credentials.provider import URLCredentialsProvider

    return _fetch(URLCredentialsProvider(uri=uri), "ALIBABA_CLOUD_CREDENTIALS_URI")


# ---- the SDK's own logs ---------------------------------------------------------------------
class _Redact(logging.Filter):
    """Masks credential values in the SDK's own log records (with ``DEBUG=sdk`` in the
    environment it logs every request header, the signature and STS token among them)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.values:
            text = record.getMessage()
            masked = redact(text, tuple(self.values))
            if masked != text:
                record.msg, record.args = masked, None
        return True


_SDK_LOGGERS = ("darabonba-core", "credentials")
_REDACT = _Redact()


def _mask_sdk_logs(values: tuple[str, ...]) -> None:
    """Make sure the SDK's loggers never write `values` (added once per process)."""
    _REDACT.values.update(v for v in values if v and len(v) >= 4)
    for name in _SDK_LOGGERS:
        sdk_log = logging.getLogger(name)
        if _REDACT not in sdk_log.filters:
            sdk_log.addFilter(_REDACT)
