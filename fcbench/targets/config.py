"""Target configs: where a workload sends (a local harness, any URL, Function Compute), and the
``--target`` grammar that names a url or fc target on the command line.

Key names: `TargetConfig` (the discriminated union of `LocalTargetConfig`, `UrlTargetConfig`,
`FcTargetConfig`), `TARGET_MODELS`, `TARGET_KINDS`, `TARGET_FORMS`, `target_from_url`,
`target_keys`, `check_url`. `fcbench.targets.open_target` turns a url or fc config into a `Target`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, TypeAdapter

from .._model import Model, did_you_mean, located_error, model_keys
from .._net import is_loopback
from .._yaml import LocatedDoc
from ..errors import UsageError
from ..spec import FunctionSpec

__all__ = ["CREDENTIAL_ENV", "FcTargetConfig", "LocalTargetConfig", "TARGET_FORMS",
           "TARGET_KINDS", "TARGET_MODELS", "TargetConfig", "UrlTargetConfig", "check_url",
           "read_target_config", "target_from_url", "target_keys"]

_err = located_error  # every check below raises one, at a location of the document

TARGET_KINDS = ("local", "url", "fc")
CREDENTIAL_ENV = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")


class _TargetBase(Model):
    function: str | None = Field(None, description="function to invoke (default: the only one)")

    @property
    def function_specs(self) -> tuple[FunctionSpec, ...]:
        """The loaded function specs of a local target (empty for url and fc targets)."""
        return ()


class LocalTargetConfig(_TargetBase):
    """A local harness started for the run, serving the given function specs."""

    kind: Literal["local"] = "local"
    functions: list[Union[str, dict[str, Any]]] = Field(
        [], description="spec files (relative to the workload) or inline specs")
    virtual_gpus: str | None = Field(None, description="e.g. 1x16GB")
    runtime: Literal["process", "docker"] | None = Field(None, description="override")
    path: str | None = Field(None, description="HTTP-trigger path instead of InvokeFunction")
    pin_timeouts: bool = Field(False, description="keep idleTimeout and queue timeout as "
                               "written even when the workload's time is compressed")

    _specs: tuple[FunctionSpec, ...] = PrivateAttr(())

    @property
    def function_specs(self) -> tuple[FunctionSpec, ...]:
        return self._specs


class UrlTargetConfig(_TargetBase):
    """Any URL: a running harness, an HTTP trigger, any endpoint."""

    kind: Literal["url"]
    url: str | None = Field(None, description="base URL (with function) or full URL")
    path: str | None = Field(None, description="HTTP-trigger path instead of InvokeFunction")


class FcTargetConfig(_TargetBase):
    """Function Compute through its SDK; credentials from the Alibaba Cloud default chain
    (`fcbench.credentials`), never from the workload file."""

    kind: Literal["fc"]
    region: str | None = Field(None, description="region id, e.g. cn-hangzhou")
    endpoint: str | None = Field(None, description="endpoint (default from region)")
    qualifier: str | None = Field(None, description="version or alias")


#: target kind -> its model: the one list the loader, the errors and the docs read.
TARGET_MODELS: dict[str, type[_TargetBase]] = {
    "local": LocalTargetConfig, "url": UrlTargetConfig, "fc": FcTargetConfig}
TargetConfig = Annotated[Union[LocalTargetConfig, UrlTargetConfig, FcTargetConfig],
                         Field(discriminator="kind")]


_ADAPTER: TypeAdapter[Any] = TypeAdapter(TargetConfig)


def read_target_config(data: dict[str, Any]) -> _TargetBase:
    """A target config back from its ``model_dump`` (the runner -> Locust child protocol)."""
    return _ADAPTER.validate_python(data)


def target_keys(kind: str) -> set[str]:
    """The keys a target of `kind` takes."""
    return set(model_keys(TARGET_MODELS[kind]))


# ``--target`` values: fc://REGION/FUNCTION, fc://HOST:PORT/FUNCTION, or an http(s) URL
_REGION = re.compile(r"^[a-z]{2,}(?:-[a-z0-9]+)+$")
_FC_QUERY = ("qualifier", "endpoint")
TARGET_FORMS = ("fc://REGION/FUNCTION[?qualifier=Q] (Function Compute, e.g. "
                "fc://cn-hangzhou/mobilenet-v2), fc://127.0.0.1:PORT/FUNCTION (the harness "
                "through the FC SDK), or an http(s) URL (an HTTP trigger such as "
                "https://ID.cn-hangzhou.fcapp.run/ or http://127.0.0.1:9080/http/FUNCTION/)")


def target_from_url(text: str, *, function: str | None = None
                    ) -> UrlTargetConfig | FcTargetConfig:
    """The target a ``--target`` value names (see `TARGET_FORMS`).

    ``fc://`` with a region id as host is FC at ``fcv3.{region}.aliyuncs.com``; any other host
    is an FC 3.0 endpoint (``http`` on loopback, where the harness listens; ``https``
    elsewhere), ``?endpoint=URL`` overrides it. An http(s) URL is sent to as it is. `function`
    fills in an fc URL without a path.

    Raises:
        UsageError: the value fits none of the forms (the message shows them).
    """
    parts = urlsplit(text.strip())
    if parts.username or parts.password:
        raise UsageError(f"--target {text!r}: credentials never go in a target URL (they would "
                         "end up in results); remove the user:password part and set "
                         f"{' and '.join(CREDENTIAL_ENV)} in the environment instead")
    if parts.scheme in ("http", "https") and parts.hostname:
        return UrlTargetConfig(kind="url", url=text.strip())
    if parts.scheme != "fc" or not parts.netloc:
        raise UsageError(f"--target {text!r} is not a target; use {TARGET_FORMS}")
    query: dict[str, str] = {}
    for item in filter(None, parts.query.split("&")):
        key, _, value = item.partition("=")
        if key not in _FC_QUERY:
            hint = did_you_mean(key, _FC_QUERY)
            raise UsageError(f"--target {text!r}: unknown query key {key!r}; {hint}an fc target "
                             f"takes {', '.join(_FC_QUERY)}")
        query[key] = value
    name = parts.path.strip("/") or function
    if not name or "/" in name:
        raise UsageError(f"--target {text!r} names no function; write fc://REGION/FUNCTION")
    region, endpoint = None, query.get("endpoint") or None
    if _REGION.match(parts.netloc):
        region = parts.netloc
    elif not endpoint:
        scheme = "http" if is_loopback(parts.hostname) else "https"
        endpoint = f"{scheme}://{parts.netloc}"
    return FcTargetConfig(kind="fc", function=name, region=region, endpoint=endpoint,
                          qualifier=query.get("qualifier") or None)




def check_url(doc: LocatedDoc, loc: tuple[Any, ...], url: str, *,
               scheme_optional: bool = False) -> None:
    """Refuse (at `loc` of `doc`) a URL that is not http(s) with a host, or that holds
    credentials."""
    parts = urlsplit(url if "://" in url or not scheme_optional else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _err(doc, loc, f"{url!r} is not an http(s) URL; write e.g. http://127.0.0.1:9080")
    if parts.username or parts.password:
        raise _err(doc, loc, "credentials never go in a workload file; remove the user:password "
                             "part of the URL")
