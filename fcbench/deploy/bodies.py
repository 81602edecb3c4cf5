"""A function spec as the FC 3.0 API calls `fcbench deploy` makes: bodies, paths, what changed.

Key names: `ApiCall` (one call: action, method, path, query, body), `HttpTrigger` (the HTTP
trigger to add), `function_body` / `update_body` / `trigger_body` / `provision_body`,
`harness_keys` (the spec's `harness:` block, sent to the harness only), `deploy_plan` (every
call a deploy may make, for ``--dry-run``), `function_changes` (field by field). Pure: no I/O;
`client.py` sends these through the SDK.

Every body is exactly what the SDK puts on the wire: its request model, built from the body with
``from_map``, gives the same mapping back from ``to_map`` (tested), including the empty lists the
SDK always sends (``tags``, ``scheduledActions``, ``targetTrackingPolicies``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ..errors import SpecError
from ..fc import DEFAULT_QUALIFIER, HTTP_METHODS, TRIGGER_AUTH_TYPES  # re-exported
from ..protocol import function_path
from ..secrets import MASK, looks_secret, mask_secrets
from ..spec import FunctionSpec

__all__ = [
    "DEFAULT_HANDLER", "DEFAULT_METHODS", "DEFAULT_QUALIFIER", "DEFAULT_TRIGGER_NAME",
    "HTTP_METHODS", "ApiCall", "Change", "HttpTrigger", "delete_plan", "deploy_plan",
    "function_body", "function_changes", "harness_keys", "jsonable", "provision_body",
    "trigger_body", "trigger_config", "update_body",
]

#: FC's CreateFunction marks `handler` required for every runtime; a custom container ignores it.
DEFAULT_HANDLER = "index.handler"
DEFAULT_TRIGGER_NAME = "httpTrigger"
DEFAULT_METHODS = HTTP_METHODS
AUTH_TYPES = TRIGGER_AUTH_TYPES


@dataclass(frozen=True)
class HttpTrigger:
    """An HTTP trigger: FC's `triggerConfig {authType, methods}` plus its name and qualifier."""

    name: str = DEFAULT_TRIGGER_NAME
    auth_type: str = "anonymous"
    methods: tuple[str, ...] = DEFAULT_METHODS
    qualifier: str = DEFAULT_QUALIFIER

    def __post_init__(self) -> None:
        if self.auth_type not in AUTH_TYPES:
            raise SpecError(f"authType {self.auth_type!r} is not one of "
                            f"{', '.join(AUTH_TYPES)}", path="triggerConfig.authType")
        bad = [m for m in self.methods if m not in HTTP_METHODS]
        if bad or not self.methods:
            raise SpecError(f"methods must be some of {', '.join(HTTP_METHODS)} "
                            f"(got {', '.join(bad) or 'none'})", path="triggerConfig.methods")

    def describe(self) -> str:
        """``httpTrigger (http, anonymous, GET POST)``."""
        return f"{self.name} (http, {self.auth_type}, {' '.join(self.methods)})"


@dataclass(frozen=True)
class ApiCall:
    """One FC 3.0 API call: what the SDK's ``*_with_options`` method sends."""

    action: str
    method: str
    path: str
    function: str
    body: dict[str, Any] | None = None
    query: dict[str, str] = field(default_factory=dict)
    #: Sent to the harness only, merged into the body (the `harness:` block; not FC fields).
    harness: dict[str, Any] | None = None
    #: When the call is made (shown by ``--dry-run``), e.g. "when the function exists".
    when: str = ""
    trigger: str | None = None

    def wire_body(self) -> dict[str, Any] | None:
        """The JSON body as it goes on the wire (the harness block included where set)."""
        if self.body is None:
            return None
        return {**self.body, "harness": self.harness} if self.harness is not None else self.body

    def render(self) -> str:
        """``PUT /2023-03-30/functions/f`` and the body as indented JSON, secrets masked."""
        query = f"?{urlencode(self.query)}" if self.query else ""
        head = f"{self.action}: {self.method} {self.path}{query}"
        if self.when:
            head += f"    ({self.when})"
        body = self.wire_body()
        if body is None:
            return head
        return head + "\n" + json.dumps(mask_secrets(body), indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class Change:
    """One field that differs between what FC has and what the spec says."""

    path: str
    old: Any
    new: Any

    def render(self) -> str:
        secret = looks_secret(self.path.rsplit(".", 1)[-1])
        return f"{self.path}: {_show(self.old, secret)} -> {_show(self.new, secret)}"


def _show(value: Any, secret: bool) -> str:
    if value is None:
        return "(unset)"
    if secret:
        return MASK
    return json.dumps(jsonable(value), ensure_ascii=False)


def jsonable(value: Any) -> Any:
    """`value` with whole-number floats as ints (FC's integer fields reject ``60.0``)."""
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _fc_fields(spec: FunctionSpec) -> dict[str, Any]:
    return jsonable(spec.to_fc())


def function_body(spec: FunctionSpec) -> dict[str, Any]:
    """The CreateFunction body: FC 3.0 fields only (never the `harness:` block), the FC keys
    the spec passes through (role, vpcConfig, ...) included."""
    body = _fc_fields(spec)
    out: dict[str, Any] = {}
    for key, value in body.items():
        out[key] = value
        if key == "runtime":
            out["handler"] = DEFAULT_HANDLER
    out.setdefault("handler", DEFAULT_HANDLER)
    out.setdefault("tags", [])  # the SDK's CreateFunctionInput always sends it
    return out


def update_body(spec: FunctionSpec) -> dict[str, Any]:
    """The UpdateFunction body: CreateFunction's less the name (it is in the path) and tags."""
    return {k: v for k, v in function_body(spec).items() if k not in ("functionName", "tags")}


def harness_keys(spec: FunctionSpec) -> dict[str, Any]:
    """The spec's `harness:` block as the harness's CreateFunction reads it, less
    `minInstances`: provisioned instances go through PutProvisionConfig, toward the harness as
    toward FC, so an UpdateFunction never resets what a provision config set."""
    return jsonable(spec.harness.model_dump(by_alias=True, exclude_none=True,
                                            exclude={"min_instances"}))


def trigger_config(trigger: HttpTrigger) -> dict[str, Any]:
    """`triggerConfig` of an HTTP trigger, as a mapping."""
    return {"authType": trigger.auth_type, "methods": list(trigger.methods)}


def trigger_body(trigger: HttpTrigger) -> dict[str, Any]:
    """The CreateTrigger body; FC takes `triggerConfig` as a JSON string."""
    return {"qualifier": trigger.qualifier,
            "triggerConfig": json.dumps(trigger_config(trigger), separators=(",", ":")),
            "triggerName": trigger.name, "triggerType": "http"}


def provision_body(target: int) -> dict[str, Any]:
    """The PutProvisionConfig body: `defaultTarget` provisioned (never reclaimed) instances."""
    if target < 0:
        raise SpecError(f"a provision target is a number of instances, 0 or more (got {target})",
                        path="defaultTarget")
    # the SDK's PutProvisionConfigInput always sends the two lists
    return {"defaultTarget": target, "scheduledActions": [], "targetTrackingPolicies": []}


def _fn(name: str, tail: str = "") -> str:
    return function_path(name) + tail


def deploy_plan(spec: FunctionSpec, *, harness: bool, trigger: HttpTrigger | None,
                provision: int | None) -> list[ApiCall]:
    """Every call `fcbench deploy` may make for `spec`, in order (``--dry-run`` prints these).

    Args:
        harness: the endpoint is the local harness, so the `harness:` block goes along.
        trigger: the HTTP trigger to have (None: leave triggers alone).
        provision: provisioned instances to have (None: leave the provision config alone).
    """
    name = spec.name
    extra = harness_keys(spec) if harness else None
    calls = [
        ApiCall("GetFunction", "GET", _fn(name), name),
        ApiCall("CreateFunction", "POST", function_path(), name, body=function_body(spec),
                harness=extra, when="when the function does not exist"),
        ApiCall("UpdateFunction", "PUT", _fn(name), name, body=update_body(spec),
                harness=extra, when="when it exists and a field differs" + (
                    "; always toward the harness, whose harness keys cannot be compared"
                    if harness else "")),
    ]
    if trigger is not None:
        calls += [
            ApiCall("ListTriggers", "GET", _fn(name, "/triggers"), name),
            ApiCall("DeleteTrigger", "DELETE", _fn(name, "/triggers/{existing}"), name,
                    when="for an HTTP trigger with another name or configuration: FC keeps "
                         "one per qualifier"),
            ApiCall("CreateTrigger", "POST", _fn(name, "/triggers"), name,
                    body=trigger_body(trigger), trigger=trigger.name,
                    when=f"when {trigger.name} does not exist as given"),
        ]
    if provision is not None:
        query = {"qualifier": DEFAULT_QUALIFIER}
        calls += [
            ApiCall("GetProvisionConfig", "GET", _fn(name, "/provision-config"), name,
                    query=query),
            ApiCall("PutProvisionConfig", "PUT", _fn(name, "/provision-config"), name,
                    body=provision_body(provision), query=query,
                    when=f"when defaultTarget is not {provision}"),
        ]
    return calls


def delete_plan(name: str, triggers: Sequence[str] = ()) -> list[ApiCall]:
    """`fcbench deploy delete NAME`: triggers, then the provision config, then the function."""
    query = {"qualifier": DEFAULT_QUALIFIER}
    calls = [ApiCall("ListTriggers", "GET", _fn(name, "/triggers"), name)]
    calls += [ApiCall("DeleteTrigger", "DELETE", _fn(name, f"/triggers/{t}"), name, trigger=t)
              for t in triggers]
    if not triggers:
        calls.append(ApiCall("DeleteTrigger", "DELETE", _fn(name, "/triggers/{each}"), name,
                             when="for each trigger ListTriggers returns"))
    calls += [
        ApiCall("DeleteProvisionConfig", "DELETE", _fn(name, "/provision-config"), name,
                query=query, when="a missing one is not an error"),
        ApiCall("DeleteFunction", "DELETE", _fn(name), name),
    ]
    return calls


def function_changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[Change]:
    """What UpdateFunction would change: every leaf of `wanted` that `current` (GetFunction's
    answer) holds differently. Fields FC adds on its own (``resolvedImageUri``, state, ...) are
    not the spec's and are not compared; environment variables FC has and the spec has not are
    reported as removed, since UpdateFunction replaces the whole set."""
    changes: list[Change] = []
    _diff(current or {}, wanted, "", changes)
    return changes


def _diff(current: Any, wanted: Any, path: str, out: list[Change]) -> None:
    if isinstance(wanted, Mapping) and wanted:
        have = current if isinstance(current, Mapping) else {}
        for key, value in wanted.items():
            _diff(have.get(key), value, f"{path}.{key}" if path else str(key), out)
        if path == "environmentVariables":
            out.extend(Change(f"{path}.{k}", v, None) for k, v in have.items() if k not in wanted)
        return
    if isinstance(wanted, Mapping):  # {}: FC may answer {} or leave it out
        if path == "environmentVariables" and isinstance(current, Mapping):
            out.extend(Change(f"{path}.{k}", v, None) for k, v in current.items())
        return
    if not _same(current, wanted):
        out.append(Change(path, current, wanted))


def _same(a: Any, b: Any) -> bool:
    if a in (None, "", [], {}) and b in (None, "", [], {}):
        return True  # FC leaves empty fields out of its answer
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b
