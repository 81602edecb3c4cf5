"""`fcbench deploy` over the FC 3.0 SDK: one code path for Function Compute and the harness.

Key names: `FcApi` (the management calls, through ``alibabacloud-fc20230330``'s own request
models), `deploy` (create or update, HTTP trigger, provision config; says what changed),
`delete` (triggers, provision config, function), `DeployError`, `DeployReport`.

The SDK client comes from `FcTarget`, so credentials are found in one place (`sdk_client`).
Toward the harness (an endpoint on 127.0.0.1) the spec's `harness:` block rides along in the
CreateFunction / UpdateFunction body, where the harness reads it; toward FC it never does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .._net import is_loopback
from ..errors import FcApiError
from ..protocol import trigger_path
from ..spec import FunctionSpec
from .bodies import (
    DEFAULT_QUALIFIER,
    HttpTrigger,
    function_body,
    function_changes,
    harness_keys,
    provision_body,
    trigger_body,
    trigger_config,
    update_body,
)

__all__ = ["DeployError", "DeployReport", "FcApi", "delete", "deploy", "is_harness_endpoint",
           "sdk_client"]

DEFAULT_TIMEOUT_S = 60.0
#: The codes the harness's gateway answers for a route it does not serve (FC's own 404s name
#: the missing resource: FunctionNotFound, TriggerNotFound, ...).
_NO_ROUTE_CODES = ("NotFound", "MethodNotAllowed")


class DeployError(FcApiError):
    """An FC 3.0 management call failed; `action`, `status`, `code` and `request_id` say which
    and how."""

    def __init__(self, message: str, *, action: str, status: int | None = None,
                 code: str | None = None, request_id: str | None = None) -> None:
        super().__init__(message, code=code, request_id=request_id)
        self.action = action
        self.status = status

    @property
    def not_found(self) -> bool:
        """FC answered 404 for the resource itself (not for a route it does not serve)."""
        return self.status == 404 and not self.route_missing

    @property
    def route_missing(self) -> bool:
        """The endpoint does not serve this API at all (a harness without the route)."""
        return self.status in (404, 405) and self.code in _NO_ROUTE_CODES


def is_harness_endpoint(endpoint: str | None) -> bool:
    """Whether `endpoint` is the local harness (loopback), which reads the `harness:` block."""
    if not endpoint:
        return False
    return is_loopback(urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}").hostname)


def sdk_client(*, endpoint: str | None, region: str | None, timeout: float) -> Any:
    """The FC 3.0 SDK client, with credentials found the way every fc target finds them
    (toward the harness: its own key, from its key file).

    Raises:
        UsageError: neither an endpoint nor a region, or no credentials for FC.
        ImportError: the SDK is not installed (names the pip extra).
    """
    from ..targets.fc import FcTarget

    # FcTarget owns the credential lookup and the SDK Config; build one and reuse its client
    # rather than writing a second lookup that could drift from it.
    return FcTarget("-", endpoint=endpoint, region=region, timeout=timeout)._client


class FcApi:
    """The FC 3.0 management calls `fcbench deploy` makes, each through the SDK's own
    ``*_with_options`` method and request model.

    Args:
        endpoint: the harness (``http://127.0.0.1:9080``) or an FC endpoint.
        region: FC region id (``cn-hangzhou``); the endpoint is ``fcv3.{region}.aliyuncs.com``.
        timeout: seconds per call.
        client: an SDK client to use instead of making one (tests).
    """

    def __init__(self, *, endpoint: str | None = None, region: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, client: Any = None) -> None:
        # the client first: without the SDK, its ImportError names the pip extra
        self._client = client or sdk_client(endpoint=endpoint, region=region, timeout=timeout)
        from alibabacloud_fc20230330 import models
        from darabonba.runtime import RuntimeOptions

        self._m = models
        self._runtime = RuntimeOptions(read_timeout=int(timeout * 1000), connect_timeout=10_000,
                                       autoretry=False, max_attempts=1)
        self.is_harness = is_harness_endpoint(endpoint)
        self.endpoint = endpoint or f"fcv3.{region}.aliyuncs.com"

    def __repr__(self) -> str:
        return f"FcApi(endpoint={self.endpoint!r}, harness={self.is_harness})"

    # ---- functions ----------------------------------------------------------------------
    def get_function(self, name: str) -> dict[str, Any] | None:
        """GetFunction's answer, or None when the function does not exist."""
        m = self._m
        try:
            resp = self._call("GetFunction", lambda: self._client.get_function_with_options(
                name, m.GetFunctionRequest(), {}, self._runtime))
        except DeployError as exc:
            if exc.not_found:
                return None
            raise
        return _body(resp)

    def create_function(self, spec: FunctionSpec) -> dict[str, Any]:
        m = self._m
        body = self._with_harness(m.CreateFunctionInput().from_map(function_body(spec)), spec)
        return _body(self._call("CreateFunction", lambda: self._client.create_function_with_options(
            m.CreateFunctionRequest(body=body), {}, self._runtime)))

    def update_function(self, spec: FunctionSpec) -> dict[str, Any]:
        m = self._m
        body = self._with_harness(m.UpdateFunctionInput().from_map(update_body(spec)), spec)
        return _body(self._call("UpdateFunction", lambda: self._client.update_function_with_options(
            spec.name, m.UpdateFunctionRequest(body=body), {}, self._runtime)))

    def delete_function(self, name: str) -> None:
        self._call("DeleteFunction", lambda: self._client.delete_function_with_options(
            name, {}, self._runtime))

    # ---- triggers -----------------------------------------------------------------------
    def list_triggers(self, name: str) -> list[dict[str, Any]]:
        """Every trigger of the function (all pages)."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = _body(self._call("ListTriggers", self._list_page(name, token)))
            out.extend(page.get("triggers") or [])
            token = page.get("nextToken")
            if not token:
                return out

    def _list_page(self, name: str, token: str | None) -> Callable[[], Any]:
        request = self._m.ListTriggersRequest(limit=100, next_token=token)
        return lambda: self._client.list_triggers_with_options(name, request, {}, self._runtime)

    def create_trigger(self, name: str, trigger: HttpTrigger) -> dict[str, Any]:
        m = self._m
        body = m.CreateTriggerInput().from_map(trigger_body(trigger))
        return _body(self._call("CreateTrigger", lambda: self._client.create_trigger_with_options(
            name, m.CreateTriggerRequest(body=body), {}, self._runtime)))

    def delete_trigger(self, name: str, trigger: str) -> None:
        self._call("DeleteTrigger", lambda: self._client.delete_trigger_with_options(
            name, trigger, {}, self._runtime))

    # ---- provision config ---------------------------------------------------------------
    def get_provision(self, name: str) -> dict[str, Any] | None:
        """GetProvisionConfig's answer for LATEST, or None when there is none."""
        m = self._m
        try:
            resp = self._call("GetProvisionConfig",
                              lambda: self._client.get_provision_config_with_options(
                                  name, m.GetProvisionConfigRequest(qualifier=DEFAULT_QUALIFIER),
                                  {}, self._runtime))
        except DeployError as exc:
            if exc.not_found and exc.code != "FunctionNotFound":
                return None
            raise
        return _body(resp)

    def put_provision(self, name: str, target: int) -> dict[str, Any]:
        m = self._m
        request = m.PutProvisionConfigRequest(
            qualifier=DEFAULT_QUALIFIER,
            body=m.PutProvisionConfigInput().from_map(provision_body(target)))
        return _body(self._call("PutProvisionConfig",
                                lambda: self._client.put_provision_config_with_options(
                                    name, request, {}, self._runtime)))

    def delete_provision(self, name: str) -> bool:
        """Remove the provision config; False when there was none."""
        m = self._m
        try:
            self._call("DeleteProvisionConfig",
                       lambda: self._client.delete_provision_config_with_options(
                           name, m.DeleteProvisionConfigRequest(qualifier=DEFAULT_QUALIFIER),
                           {}, self._runtime))
        except DeployError as exc:
            if exc.not_found and exc.code != "FunctionNotFound":
                return False
            raise
        return True

    # ---- plumbing -----------------------------------------------------------------------
    def _with_harness(self, body: Any, spec: FunctionSpec) -> Any:
        if self.is_harness:
            # DaraModel.to_map() starts from `_map`: the SDK then sends the key with the
            # modelled fields. Only toward the harness: FC must never see non-FC keys.
            body._map = {"harness": harness_keys(spec)}
        return body

    def _call(self, action: str, send: Callable[[], Any]) -> Any:
        try:
            return send()
        except Exception as exc:  # noqa: BLE001 - the SDK's errors become ours at the boundary
            raise self._error(action, exc) from None

    def _error(self, action: str, exc: Exception) -> DeployError:
        data = getattr(exc, "data", None)
        data = data if isinstance(data, dict) else {}
        code = getattr(exc, "code", None) or data.get("Code")
        status = getattr(exc, "status_code", None) or data.get("statusCode")
        request_id = getattr(exc, "request_id", None) or data.get("RequestId") or None
        if not code:
            text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            hint = (" Is the harness running? Start it with `fcbench harness serve SPEC.yaml`."
                    if self.is_harness else "")
            return DeployError(f"{action}: cannot reach {self.endpoint} ({text}).{hint}",
                               action=action)
        message = data.get("Message") or getattr(exc, "message", "") or str(exc)
        rid = f" (request id {request_id})" if request_id else ""
        text = f"{action} failed: {status} {code}: {message}{rid}"
        if status in (404, 405) and code in _NO_ROUTE_CODES:
            text += f". {self.endpoint} does not serve {action}"
        return DeployError(text, action=action, status=int(status) if status else None,
                           code=str(code), request_id=request_id)


def _body(resp: Any) -> dict[str, Any]:
    body = getattr(resp, "body", None)
    return body.to_map() if body is not None and hasattr(body, "to_map") else {}


@dataclass
class DeployReport:
    """What a deploy did, one line per change, and where the HTTP trigger answers."""

    name: str
    lines: list[str] = field(default_factory=list)
    trigger_url: str | None = None
    created: bool = False


def deploy(api: FcApi, spec: FunctionSpec, *, trigger: HttpTrigger | None = None,
           provision: int | None = None) -> DeployReport:
    """Create or update `spec`'s function, then its HTTP trigger and provision config.

    Args:
        trigger: the HTTP trigger to have (None: triggers are left as they are).
        provision: provisioned instances (PutProvisionConfig defaultTarget; None: left alone).

    Raises:
        DeployError: a call failed (FC's code and request id in it).
    """
    report = DeployReport(spec.name)
    current = api.get_function(spec.name)
    if current is None:
        api.create_function(spec)
        report.created = True
        report.lines.append(f"created function {spec.name}")
    else:
        changes = function_changes(current, update_body(spec))
        if changes or api.is_harness:
            api.update_function(spec)
            report.lines.append(f"updated function {spec.name}")
            report.lines += [f"  {c.render()}" for c in changes]
            if api.is_harness:
                # GetFunction through the SDK keeps FC's fields only, so the harness block
                # cannot be compared: it is always sent again.
                report.lines.append("  harness: keys sent again (not FC fields, not compared)")
        else:
            report.lines.append(f"function {spec.name} unchanged")
    if trigger is not None:
        report.trigger_url = _ensure_trigger(api, spec.name, trigger, report.lines)
    if provision is not None:
        _ensure_provision(api, spec.name, provision, report.lines)
    return report


def _ensure_trigger(api: FcApi, name: str, trigger: HttpTrigger, lines: list[str]) -> str | None:
    http = [t for t in api.list_triggers(name) if t.get("triggerType") == "http"]
    same = [t for t in http if _same_trigger(t, trigger)]
    if same:
        lines.append(f"trigger {trigger.describe()} unchanged")
        return _trigger_url(api, name, same[0])
    # FC gives a function one HTTP trigger per qualifier: a different one makes way for ours
    for old in http:
        if (old.get("qualifier") or DEFAULT_QUALIFIER) == trigger.qualifier:
            api.delete_trigger(name, str(old.get("triggerName")))
            lines.append(f"deleted trigger {old.get('triggerName')} "
                         f"({_config_text(old)}): another configuration")
    created = api.create_trigger(name, trigger)
    lines.append(f"created trigger {trigger.describe()}")
    return _trigger_url(api, name, created)


def _config_text(trigger: dict[str, Any]) -> str:
    config = _config(trigger)
    return f"{config.get('authType')}, {' '.join(config.get('methods') or [])}"


def _config(trigger: dict[str, Any]) -> dict[str, Any]:
    config = trigger.get("triggerConfig")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            return {}
    return config if isinstance(config, dict) else {}


def _same_trigger(have: dict[str, Any], want: HttpTrigger) -> bool:
    config = _config(have)
    if have.get("triggerName") != want.name or have.get("triggerType") != "http":
        return False
    wanted = trigger_config(want)
    return (config.get("authType") == wanted["authType"]
            and sorted(config.get("methods") or []) == sorted(wanted["methods"])
            and (have.get("qualifier") or DEFAULT_QUALIFIER) == want.qualifier)


def _trigger_url(api: FcApi, name: str, trigger: dict[str, Any]) -> str | None:
    url = (trigger.get("httpTrigger") or {}).get("urlInternet")
    if url:
        return str(url)
    if api.is_harness:  # the harness serves every function's trigger path
        base = api.endpoint if "://" in api.endpoint else f"http://{api.endpoint}"
        return base.rstrip("/") + trigger_path(name)
    return None


def _ensure_provision(api: FcApi, name: str, target: int, lines: list[str]) -> None:
    current = api.get_provision(name)
    have = int((current or {}).get("defaultTarget") or 0)
    if current is not None and have == target:
        lines.append(f"provision config defaultTarget {target} unchanged")
        return
    api.put_provision(name, target)
    lines.append(f"provision config defaultTarget: {have if current else '(none)'} -> {target}")


def delete(api: FcApi, name: str) -> list[str]:
    """Delete the function's triggers, its provision config, then the function.

    Raises:
        DeployError: the function does not exist (code FunctionNotFound), or a call failed.
    """
    lines: list[str] = []
    try:
        triggers = api.list_triggers(name)
    except DeployError as exc:
        if not exc.route_missing:
            raise
        triggers = []  # an endpoint without a triggers API has no triggers to delete
        lines.append(f"triggers: {api.endpoint} serves no ListTriggers; skipped")
    for trig in triggers:
        tname = str(trig.get("triggerName"))
        api.delete_trigger(name, tname)
        lines.append(f"deleted trigger {tname}")
    try:
        if api.delete_provision(name):
            lines.append("deleted provision config")
    except DeployError as exc:
        if not exc.route_missing:
            raise
        lines.append(f"provision config: {api.endpoint} serves no DeleteProvisionConfig; skipped")
    api.delete_function(name)
    lines.append(f"deleted function {name}")
    return lines
