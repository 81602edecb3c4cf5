"""FC 3.0's management API on the harness, in FC's JSON shapes, for the real SDK to drive.

Key names: `add_fc_routes`, `fc_error`, `trigger_guard`, `PLATFORM`. Routes (prefix
``/2023-03-30``): CreateFunction / ListFunctions ``POST|GET /functions``, GetFunction /
UpdateFunction / DeleteFunction ``GET|PUT|DELETE /functions/{fn}``, CreateTrigger / ListTriggers
``POST|GET /functions/{fn}/triggers``, GetTrigger / UpdateTrigger / DeleteTrigger ``GET|PUT|DELETE
/functions/{fn}/triggers/{t}``, Put/Get/DeleteProvisionConfig ``PUT|GET|DELETE
/functions/{fn}/provision-config?qualifier=``, ListInstances ``GET /functions/{fn}/instances``,
PublishFunctionVersion / ListFunctionVersions ``POST|GET /functions/{fn}/versions``,
DeleteFunctionVersion ``DELETE /functions/{fn}/versions/{v}``, CreateAlias / ListAliases
``POST|GET /functions/{fn}/aliases``, GetAlias / UpdateAlias / DeleteAlias ``GET|PUT|DELETE
/functions/{fn}/aliases/{a}`` (the bookkeeping: `fcbench.harness.versions`); asynchronous
invocation (`fcbench.harness.async_invoke`): Put/Get/DeleteAsyncInvokeConfig ``PUT|GET|DELETE
/functions/{fn}/async-invoke-config``, ListAsyncInvokeConfigs ``GET /async-invoke-configs``,
ListAsyncTasks ``GET /functions/{fn}/async-tasks``, GetAsyncTask ``GET
/functions/{fn}/async-tasks/{id}``, StopAsyncTask ``PUT /functions/{fn}/async-tasks/{id}/stop``,
and `async_invoke` (InvokeFunction and HTTP triggers with ``x-fc-invocation-type: Async``).
Signatures are accepted without being checked. Bodies are validated by `fcbench.spec` and state
changes are `Platform`'s; this module only shapes HTTP.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..errors import FcbenchError, SpecError
from ..fc import LIST_PAGE_SIZE, MAX_ASYNC_PAYLOAD_BYTES, MAX_LIST_LIMIT
from ..protocol import API_PREFIX, H_ASYNC_TASK_ID, H_FC_REQUEST_ID, function_path, trigger_path
from ..spec import (FunctionSpec, async_invoke_config_from_dict, concurrency_from_dict,
                    function_spec_from_dict, host_code, provision_from_dict, trigger_from_dict,
                    updated_spec)
from .answers import fc_error
from .async_invoke import (ASYNC_INVOKER, AsyncConfig, AsyncInvoker, AsyncTask, TaskConflict,
                           TaskStatus, async_too_large_message)
from .guard import GUARD
from .platform import Platform, Trigger
from .runtimes.process import HARNESS_REGION
from .scheduler import InstanceState
from .versions import LATEST, LATEST_VERSION_ID, Alias, QualifierError, Version

__all__ = ["ACCOUNT_ID", "PLATFORM", "add_fc_routes", "async_invoke", "fc_error",
           "trigger_guard"]

log = logging.getLogger(__name__)

PLATFORM = web.AppKey("platform", Platform)
#: the account id in the ARNs the harness reports (FC puts the caller's account there)
ACCOUNT_ID = "local"
#: A management body's limit (a function spec is a few KB; the harness takes no code packages).
MAX_MANAGEMENT_BODY_BYTES = 1 << 20
#: How deeply a management body's JSON may nest (FC's own shapes stay under 6).
MAX_JSON_DEPTH = 32
_BODY = web.RequestKey("fc_body", bytes)
_LIST_LIMIT, _MAX_LIMIT = LIST_PAGE_SIZE, MAX_LIST_LIMIT  # FC's page sizes (fcbench.fc)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Fail(Exception):
    """An FC error answer raised from deep in a handler (404 function, bad body...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _route(handler: Callable[[web.Request, Platform, str], Awaitable[web.Response]]) -> Handler:
    """Read the body (bounded), check the caller's signature and the body's type, give `handler`
    the platform and a request id; turn `_Fail`/`SpecError` into FC errors and stamp
    ``x-fc-request-id`` on every answer."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        rid = uuid.uuid4().hex
        try:
            body = await _read_bounded(request)
            refused = await request.app[GUARD].signature_refusal(request, body)
            if refused is not None:
                return refused
            if body and request.content_type != "application/json":
                raise _Fail(415, "InvalidArgument", "management calls take a JSON body with "
                            f"Content-Type: application/json (got {request.content_type!r})")
            request[_BODY] = body
            response = await handler(request, request.app[PLATFORM], rid)
        except (_Fail, QualifierError) as exc:
            return fc_error(exc.status, exc.code, str(exc), rid)
        except SpecError as exc:
            where = f"{exc.path}: " if exc.path else ""
            return fc_error(400, "InvalidArgument", where + exc.message, rid)
        except (FcbenchError, ValueError) as exc:  # GpuError, UsageError: it cannot run here
            return fc_error(400, "InvalidArgument", str(exc), rid)
        except Exception as exc:  # noqa: BLE001 - the SDK can only parse FC's JSON errors
            log.exception("%s %s failed", request.method, request.path)
            return fc_error(500, "InternalError", f"{type(exc).__name__}: {exc}", rid)
        response.headers[H_FC_REQUEST_ID] = rid
        return response
    return wrapped


async def _read_bounded(request: web.Request) -> bytes:
    """The body, refused with 413 beyond `MAX_MANAGEMENT_BODY_BYTES` (declared or sent)."""
    too_large = _Fail(413, "EntityTooLarge", f"payload size exceeds maximum allowed size "
                      f"({MAX_MANAGEMENT_BODY_BYTES} bytes for a management call; a function "
                      "spec is a few KB)")
    if (request.content_length or 0) > MAX_MANAGEMENT_BODY_BYTES:
        raise too_large
    parts, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_MANAGEMENT_BODY_BYTES:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _arn(name: str) -> str:
    return f"acs:fc:{HARNESS_REGION}:{ACCOUNT_ID}:functions/{name}"


def _name(request: web.Request, platform: Platform) -> str:
    name = request.match_info["name"]
    if name not in platform.specs:
        raise _Fail(404, "FunctionNotFound", f"function {name!r} does not exist; list functions "
                    f"with GET {function_path()}")
    return name


async def _body(request: web.Request) -> Any:
    raw = request[_BODY]
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise _Fail(400, "InvalidArgument", "the body must be JSON (nested at most "
                    f"{MAX_JSON_DEPTH} levels)") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise _Fail(400, "InvalidArgument", f"the body is nested more than {MAX_JSON_DEPTH} "
                    "levels deep; no FC call needs that")
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a JSON value (iterative: no recursion to blow)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_JSON_DEPTH:
                items = node.values() if isinstance(node, dict) else node
                stack.extend((item, level + 1) for item in items)
    return deepest


def _check_commands(request: web.Request, spec: FunctionSpec, before: FunctionSpec | None = None
                    ) -> None:
    """Refuse a spec from an API caller that would run a command on this machine, unless the
    operator started the harness with ``--allow-api-commands``."""
    if request.app[GUARD].allow_api_commands:
        return
    items = host_code(spec)
    if before is not None and items == host_code(before):
        return  # unchanged (the operator's own spec file, say): nothing new runs
    if items:
        raise _Fail(403, "AccessDenied", "this function would run a command on the harness's "
                    "machine (" + "; ".join(items) + "); the harness takes commands from its "
                    "operator only: start it with --allow-api-commands to accept them "
                    "through the API, or name the spec file on `fcbench harness serve`")


def _page(request: web.Request, names: list[str]) -> tuple[list[str], str | None]:
    """FC's paging: `prefix`, `nextToken` (the first name of the page), `limit`."""
    q = request.query
    try:
        limit = min(_MAX_LIMIT, max(1, int(q.get("limit") or _LIST_LIMIT)))
    except ValueError:
        raise _Fail(400, "InvalidArgument", "limit must be a whole number (1-100)") from None
    prefix, start = q.get("prefix", ""), q.get("nextToken", "")
    chosen = [n for n in sorted(names) if n.startswith(prefix) and n >= start]
    return chosen[:limit], (chosen[limit] if len(chosen) > limit else None)


# ---- functions -----------------------------------------------------------------------------
def function_json(platform: Platform, name: str, qualifier: str | None = None
                  ) -> dict[str, Any]:
    """FC's `Function` for `name` (plus the harness's own `harness` section); at a version or
    alias `qualifier`, that version's configuration."""
    spec, meta = platform.specs[name], platform.meta[name]
    modified = meta.modified
    version_id = meta.versions.main(qualifier)
    if version_id != LATEST:  # an alias shows its main version
        version = meta.versions.version(version_id)
        spec, modified = version.spec, version.created
    return {**spec.to_fc(), "functionArn": _arn(name), "functionId": meta.function_id,
            "createdTime": _iso(meta.created), "lastModifiedTime": _iso(modified),
            "state": "Active", "lastUpdateStatus": "Successful",
            "harness": spec.harness.model_dump(by_alias=True, exclude_none=True)}


async def _create_function(request: web.Request, platform: Platform, rid: str) -> web.Response:
    body = await _body(request)
    spec = function_spec_from_dict(body, source="CreateFunction body")
    _check_commands(request, spec)
    if spec.name in platform.specs:
        raise _Fail(409, "FunctionAlreadyExists", f"function {spec.name!r} already exists; "
                    "update it with PUT " + function_path(spec.name))
    await platform.add_function(spec)
    return web.json_response(function_json(platform, spec.name))


async def _list_functions(request: web.Request, platform: Platform, rid: str) -> web.Response:
    names, token = _page(request, list(platform.specs))
    doc: dict[str, Any] = {"functions": [function_json(platform, n) for n in names]}
    if token:
        doc["nextToken"] = token
    return web.json_response(doc)


async def _get_function(request: web.Request, platform: Platform, rid: str) -> web.Response:
    return web.json_response(function_json(platform, _name(request, platform),
                                           request.query.get("qualifier")))


async def _update_function(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    spec = updated_spec(platform.specs[name], await _body(request))
    _check_commands(request, spec, platform.specs[name])
    try:
        await platform.update_function(spec)
    except KeyError:  # deleted while this update prepared its runtime
        raise _Fail(404, "FunctionNotFound", f"function {name!r} does not exist") from None
    return web.json_response(function_json(platform, name))


async def _delete_function(request: web.Request, platform: Platform, rid: str) -> web.Response:
    await platform.remove_function(_name(request, platform))
    return web.Response(status=204)


# ---- triggers ------------------------------------------------------------------------------
def _trigger_json(request: web.Request, name: str, trigger: Trigger) -> dict[str, Any]:
    spec = trigger.spec
    # from the address the harness listens on, never from the caller's Host header
    url = request.app[GUARD].url + trigger_path(name).rstrip("/")
    return {"triggerName": spec.trigger_name, "triggerId": trigger.trigger_id,
            "triggerType": spec.trigger_type, "triggerConfig": spec.config_json(),
            "description": spec.description, "qualifier": spec.qualifier,
            "invocationRole": spec.invocation_role, "sourceArn": spec.source_arn,
            "targetArn": _arn(name), "status": "Ready",
            "createdTime": _iso(trigger.created), "lastModifiedTime": _iso(trigger.modified),
            "httpTrigger": {"urlInternet": url, "urlIntranet": url}}


def _trigger(request: web.Request, platform: Platform, name: str) -> Trigger:
    tname = request.match_info["trigger"]
    trigger = platform.meta[name].triggers.get(tname)
    if trigger is None:
        raise _Fail(404, "TriggerNotFound", f"function {name!r} has no trigger {tname!r}")
    return trigger


async def _create_trigger(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    spec = trigger_from_dict(await _body(request))
    platform.meta[name].versions.check(spec.qualifier)  # 404 for no such version or alias
    existing = platform.meta[name].triggers
    if spec.trigger_name in existing:
        raise _Fail(409, "TriggerAlreadyExists",
                    f"function {name!r} already has a trigger {spec.trigger_name!r}")
    if existing:  # FC: one HTTP trigger per function (and version or alias)
        raise _Fail(400, "InvalidArgument", f"function {name!r} already has the HTTP trigger "
                    f"{next(iter(existing))!r}; a function has at most one")
    return web.json_response(_trigger_json(request, name, platform.put_trigger(name, spec)))


async def _list_triggers(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    triggers = platform.meta[name].triggers
    names, token = _page(request, list(triggers))
    doc: dict[str, Any] = {"triggers": [_trigger_json(request, name, triggers[t])
                                        for t in names]}
    if token:
        doc["nextToken"] = token
    return web.json_response(doc)


async def _get_trigger(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    return web.json_response(_trigger_json(request, name, _trigger(request, platform, name)))


#: The UpdateTrigger body's fields (`UpdateTriggerInput`); name and type stay as created.
_TRIGGER_UPDATES = ("description", "qualifier", "triggerConfig", "invocationRole")


async def _update_trigger(request: web.Request, platform: Platform, rid: str) -> web.Response:
    """UpdateTrigger: the given fields replace the trigger's (a `triggerConfig` as a whole), and
    the next request to its URL meets the new methods, authType and qualifier."""
    name = _name(request, platform)
    trigger = _trigger(request, platform, name)
    body = await _body(request)
    if not isinstance(body, dict):
        raise _Fail(400, "InvalidArgument", "the UpdateTrigger body must be a JSON object")
    doc = trigger.spec.model_dump(by_alias=True)
    doc.update({k: body[k] for k in _TRIGGER_UPDATES if body.get(k) is not None})
    spec = trigger_from_dict(doc, source="UpdateTrigger body")
    platform.meta[name].versions.check(spec.qualifier)
    updated = platform.replace_trigger(name, trigger.spec.trigger_name, spec)
    return web.json_response(_trigger_json(request, name, updated))


async def _delete_trigger(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    platform.delete_trigger(name, _trigger(request, platform, name).spec.trigger_name)
    return web.Response(status=204)


def trigger_guard(request: web.Request, platform: Platform, name: str
                  ) -> tuple[web.Response | None, bool]:
    """FC's checks on a request to a function's HTTP trigger URL, before its body is read: its
    `methods` (405), and whether it must be signed with the harness's key — `authType:
    function`, and a function without an HTTP trigger (FC gives such a function no URL; the
    harness keeps ``/http/{name}/`` for signed callers). Returns (a refusal or None,
    whether the signature must then be checked); a missing ``Authorization`` is 401 at once."""
    trigger = platform.http_trigger(name)
    rid = uuid.uuid4().hex
    if trigger is not None:
        cfg = trigger.spec.trigger_config
        if request.method not in cfg.methods:
            allowed = ", ".join(cfg.methods)
            return fc_error(405, "MethodNotAllowed", f"the HTTP trigger "
                            f"{trigger.spec.trigger_name!r} of {name!r} takes {allowed}, not "
                            f"{request.method}", rid, {"Allow": allowed}), False
        if cfg.auth_type == "anonymous":
            return None, False
    if "Authorization" not in request.headers:
        why = ("its HTTP trigger has authType function" if trigger is not None else
               "it has no HTTP trigger, so only callers signing with the harness's key reach "
               "it (fcbench signs by itself); create an anonymous one to open it: "
               "fcbench deploy SPEC.yaml --trigger http")
        return fc_error(401, "Unauthorized", "Authorization header is expected but missing: "
                        f"{why}", rid), False
    return None, True


# ---- provision config, concurrency config and instances ------------------------------------
def _alias_qualifier(request: web.Request) -> str | None:
    """A provision config's `qualifier` when it names an alias (None: LATEST's)."""
    qualifier = request.query.get("qualifier")
    return None if not qualifier or qualifier == LATEST else qualifier


def _has_provision(platform: Platform, name: str) -> bool:
    """LATEST has a provision config: put, or a spec with provisioned instances or policies."""
    h = platform.specs[name].harness
    return platform.meta[name].provision is not None or bool(
        h.min_instances or h.scheduled_actions or h.target_tracking_policies)


def _provision_json(platform: Platform, name: str, alias: str | None = None) -> dict[str, Any]:
    """FC's ProvisionConfig. LATEST's: the policies as the spec holds them, `target` what they
    set now; an alias's: as put (its policies are shown, not acted on)."""
    arn = _arn(name)
    if alias is not None:  # FC's ARN of an alias's config ends in /ALIAS
        p = platform.alias_provision(name, alias)
        arn = f"{arn}/{alias}"
        target = p.default_target if p else 0
        extra = p.model_dump(by_alias=True, exclude_none=True, exclude={"default_target"}) \
            if p else {}
        return {"scheduledActions": [], "targetTrackingPolicies": [], **extra,
                "functionArn": arn, "defaultTarget": target, "target": target,
                "current": platform.provisioned_ready(name, alias), "currentError": ""}
    h, p = platform.specs[name].harness, platform.meta[name].provision
    doc = h.model_dump(by_alias=True, include={"scheduled_actions", "target_tracking_policies"})
    out: dict[str, Any] = {}
    if p is not None:
        out.update(p.model_dump(by_alias=True, exclude_none=True,
                                include={"always_allocate_cpu", "always_allocate_gpu"}))
    return {**out, "functionArn": arn, "defaultTarget": h.min_instances,
            "target": platform.provision_target(name),
            "current": platform.provisioned_ready(name), "currentError": "",
            "scheduledActions": doc["scheduledActions"] or [],
            "targetTrackingPolicies": doc["targetTrackingPolicies"] or []}


async def _put_provision(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name, alias = _name(request, platform), _alias_qualifier(request)
    platform.set_provision(name, provision_from_dict(await _body(request)), alias)
    return web.json_response(_provision_json(platform, name, alias))


async def _get_provision(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name, alias = _name(request, platform), _alias_qualifier(request)
    missing = (platform.alias_provision(name, alias) is None if alias is not None else
               not _has_provision(platform, name))
    if missing:
        where = f"alias {alias!r} of " if alias else ""
        raise _Fail(404, "ProvisionConfigNotFound",
                    f"{where}function {name!r} has no provision config; PUT one at "
                    f"{function_path(name)}/provision-config")
    return web.json_response(_provision_json(platform, name, alias))


async def _delete_provision(request: web.Request, platform: Platform, rid: str) -> web.Response:
    platform.set_provision(_name(request, platform), None, _alias_qualifier(request))
    return web.Response(status=204)


def _listed(request: web.Request, platform: Platform, keep: Callable[[str], bool]
            ) -> tuple[list[str], str | None]:
    """The functions a List*Configs call names: `functionName` (one) or all, those `keep`
    says have a config, paged like ListFunctions."""
    wanted = request.query.get("functionName")
    names = [n for n in platform.specs if (not wanted or n == wanted) and keep(n)]
    return _page(request, names)


async def _list_provisions(request: web.Request, platform: Platform, rid: str
                           ) -> web.Response:
    def aliases(n: str) -> list[str]:
        return sorted(platform.meta[n].versions.provisions)

    names, token = _listed(request, platform,
                           lambda n: _has_provision(platform, n) or bool(aliases(n)))
    configs = []
    for n in names:  # LATEST's, then each alias's (its functionArn ends in /ALIAS)
        if _has_provision(platform, n):
            configs.append(_provision_json(platform, n))
        configs += [_provision_json(platform, n, a) for a in aliases(n)]
    doc: dict[str, Any] = {"provisionConfigs": configs}
    if token:
        doc["nextToken"] = token
    return web.json_response(doc)


def _concurrency_json(platform: Platform, name: str) -> dict[str, Any]:
    """FC's ConcurrencyConfig."""
    return {"functionArn": _arn(name),
            "reservedConcurrency": platform.specs[name].harness.reserved_concurrency}


async def _put_concurrency(request: web.Request, platform: Platform, rid: str
                           ) -> web.Response:
    name = _name(request, platform)
    body = concurrency_from_dict(await _body(request))
    platform.set_concurrency(name, body.reserved_concurrency)
    return web.json_response(_concurrency_json(platform, name))


async def _get_concurrency(request: web.Request, platform: Platform, rid: str
                           ) -> web.Response:
    name = _name(request, platform)
    if platform.specs[name].harness.reserved_concurrency is None:
        raise _Fail(404, "ConcurrencyConfigNotFound",
                    f"function {name!r} has no concurrency config; PUT one at "
                    f"{function_path(name)}/concurrency")
    return web.json_response(_concurrency_json(platform, name))


async def _delete_concurrency(request: web.Request, platform: Platform, rid: str
                              ) -> web.Response:
    platform.set_concurrency(_name(request, platform), None)
    return web.Response(status=204)


async def _list_concurrency(request: web.Request, platform: Platform, rid: str
                            ) -> web.Response:
    names, token = _listed(request, platform,
                           lambda n: platform.specs[n].harness.reserved_concurrency is not None)
    doc: dict[str, Any] = {"configs": [_concurrency_json(platform, n) for n in names]}
    if token:
        doc["nextToken"] = token
    return web.json_response(doc)


async def _list_instances(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    wanted = _id_filter(request.query.get("instanceIds"))
    qualifier = request.query.get("qualifier") or None
    out = []
    for inst, version_id in platform.instances_of(name, qualifier):
        if wanted and inst.id not in wanted:
            continue
        created = platform.wall(inst.created_at) or 0.0
        out.append({"instanceId": inst.id,
                    "versionId": LATEST_VERSION_ID if version_id == LATEST else version_id,
                    "qualifier": qualifier or version_id,
                    "status": "Running" if inst.state is InstanceState.READY else "Starting",
                    "createdTimeMs": int(created * 1000),
                    "resourceType": "Provisioned" if inst.provisioned else "OnDemand"})
    return web.json_response({"instances": out, "requestId": rid})


def _id_filter(raw: str | None) -> set[str]:
    """`instanceIds` as the SDK sends it (a JSON list in one query value) or comma-separated."""
    if not raw:
        return set()
    try:
        ids = json.loads(raw)
    except ValueError:
        ids = raw.split(",")
    return {str(i) for i in (ids if isinstance(ids, list) else [ids])}


# ---- versions and aliases ------------------------------------------------------------------
def _version_json(version: Version) -> dict[str, Any]:
    """FC's `Version` (a published version is never modified: both times are its publication)."""
    return {"versionId": version.version_id, "description": version.description,
            "createdTime": _iso(version.created), "lastModifiedTime": _iso(version.created)}


def _alias_json(alias: Alias) -> dict[str, Any]:
    """FC's `Alias`."""
    return {"aliasName": alias.name, "versionId": alias.version_id,
            "description": alias.description, "additionalVersionWeight": dict(alias.weights),
            "createdTime": _iso(alias.created), "lastModifiedTime": _iso(alias.modified)}


async def _publish_version(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    return web.json_response(_version_json(platform.publish_version(name,
                                                                    await _body(request))))


async def _list_versions(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name, q = _name(request, platform), request.query
    page, token, direction = platform.meta[name].versions.list_versions(
        direction=q.get("direction"), limit=q.get("limit"), next_token=q.get("nextToken"))
    doc: dict[str, Any] = {"versions": [_version_json(v) for v in page], "direction": direction}
    if token:
        doc["nextToken"] = token
    return web.json_response(doc)


async def _delete_version(request: web.Request, platform: Platform, rid: str) -> web.Response:
    await platform.delete_version(_name(request, platform), request.match_info["version"])
    return web.Response(status=204)


async def _create_alias(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    return web.json_response(_alias_json(platform.create_alias(name, await _body(request))))


async def _list_aliases(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name, q = _name(request, platform), request.query
    page, token = platform.meta[name].versions.list_aliases(
        prefix=q.get("prefix"), limit=q.get("limit"), next_token=q.get("nextToken"))
    doc: dict[str, Any] = {"aliases": [_alias_json(a) for a in page]}
    if token:
        doc["nextToken"] = token
    return web.json_response(doc)


async def _get_alias(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    return web.json_response(_alias_json(platform.meta[name].versions.alias(
        request.match_info["alias"])))


async def _update_alias(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    return web.json_response(_alias_json(platform.update_alias(
        name, request.match_info["alias"], await _body(request))))


async def _delete_alias(request: web.Request, platform: Platform, rid: str) -> web.Response:
    platform.delete_alias(_name(request, platform), request.match_info["alias"])
    return web.Response(status=204)


# ---- asynchronous invocation ---------------------------------------------------------------
async def async_invoke(request: web.Request, name: str, method: str, path: str, *,
                       signed: bool, qualifier: str | None = None) -> web.Response:
    """An invocation with ``x-fc-invocation-type: Async``: FC's 202 with ``x-fc-request-id``
    (and ``x-fc-async-task-id`` when it is a task) and an empty body, at once; the invocation
    waits in the function's async queue (`AsyncInvoker`). 413 EntityTooLarge beyond FC's
    128 KB."""
    rid = uuid.uuid4().hex
    if (request.content_length or 0) > MAX_ASYNC_PAYLOAD_BYTES:
        return fc_error(413, "EntityTooLarge", async_too_large_message(), rid)
    parts, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_ASYNC_PAYLOAD_BYTES:
            return fc_error(413, "EntityTooLarge", async_too_large_message(), rid)
        parts.append(chunk)
    body = b"".join(parts)
    if signed:
        refused = await request.app[GUARD].signature_refusal(request, body)
        if refused is not None:
            return refused
    platform = request.app[PLATFORM]
    if name not in platform.specs:
        return fc_error(404, "FunctionNotFound", f"function {name!r} does not exist", rid)
    try:
        if qualifier and qualifier != LATEST:  # the version is drawn when the job runs
            platform.meta[name].versions.check(qualifier)
        task = request.app[ASYNC_INVOKER].submit(
            name, method=method, path=path, body=body, headers=request.headers.copy(),
            request_id=rid, task_id=request.headers.get(H_ASYNC_TASK_ID), qualifier=qualifier)
    except QualifierError as exc:
        return fc_error(exc.status, exc.code, str(exc), rid)
    except ValueError as exc:
        return fc_error(400, "InvalidArgument", str(exc), rid)
    except TaskConflict as exc:
        return fc_error(409, "AsyncTaskAlreadyExists", str(exc), rid)
    headers = {H_FC_REQUEST_ID: rid}
    if task.is_task:
        headers[H_ASYNC_TASK_ID] = task.task_id
    return web.Response(status=202, headers=headers)


def _async_config_json(name: str, cfg: AsyncConfig) -> dict[str, Any]:
    """FC's `AsyncConfig`."""
    return {**cfg.spec.model_dump(by_alias=True, exclude_none=True),
            "functionArn": _arn(name), "createdTime": _iso(cfg.created),
            "lastModifiedTime": _iso(cfg.modified)}


def _invoker(request: web.Request) -> AsyncInvoker:
    return request.app[ASYNC_INVOKER]


async def _put_async_config(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    spec = async_invoke_config_from_dict(await _body(request))
    return web.json_response(_async_config_json(name, _invoker(request).put_config(name, spec)))


async def _get_async_config(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    cfg = _invoker(request).config(name)
    if cfg is None:
        raise _Fail(404, "AsyncConfigNotFound", f"function {name!r} has no async invoke "
                    f"config; PUT one at {function_path(name)}/async-invoke-config")
    return web.json_response(_async_config_json(name, cfg))


async def _delete_async_config(request: web.Request, platform: Platform, rid: str
                               ) -> web.Response:
    _invoker(request).delete_config(_name(request, platform))
    return web.Response(status=204)


async def _list_async_configs(request: web.Request, platform: Platform, rid: str
                              ) -> web.Response:
    wanted = request.query.get("functionName")
    found = {n: c for n, c in _invoker(request).configs() if wanted in (None, "", n)}
    names, token = _page(request, list(found))
    doc: dict[str, Any] = {"configs": [_async_config_json(n, found[n]) for n in names]}
    if token:
        doc["nextToken"] = token
    return web.json_response(doc)


def _async_task(request: web.Request, platform: Platform, name: str) -> AsyncTask:
    task_id = request.match_info["task"]
    task = _invoker(request).task(name, task_id)
    if task is None:
        raise _Fail(404, "AsyncTaskNotFound", f"function {name!r} has no async task "
                    f"{task_id!r} (a task needs asyncTask: true in the function's async invoke "
                    "config when it is invoked)")
    return task


async def _get_async_task(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    return web.json_response(_async_task(request, platform, name).to_fc(_arn(name)))


def _query_ms(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise _Fail(400, "InvalidArgument", f"{key} must be a time in epoch milliseconds "
                    f"(got {raw!r})") from None


async def _list_async_tasks(request: web.Request, platform: Platform, rid: str) -> web.Response:
    """ListAsyncTasks: filters `status`, `prefix`, `startedTimeBegin` / `startedTimeEnd` (ms),
    `sortOrderByTime` (``asc`` | ``desc``, by submission), pages of `limit` (1-100, 20)
    through `nextToken`, `includePayload`."""
    name = _name(request, platform)
    q = request.query
    status = q.get("status") or None
    if status is not None and status not in {s.value for s in TaskStatus}:
        raise _Fail(400, "InvalidArgument", f"status {status!r} is not one of FC's: "
                    + ", ".join(s.value for s in TaskStatus))
    order = (q.get("sortOrderByTime") or "desc").lower()
    if order not in ("asc", "desc"):
        raise _Fail(400, "InvalidArgument", "sortOrderByTime must be asc or desc")
    try:
        limit = min(_MAX_LIMIT, max(1, int(q.get("limit") or _LIST_LIMIT)))
    except ValueError:
        raise _Fail(400, "InvalidArgument", "limit must be a whole number (1-100)") from None
    begin, end = _query_ms(request, "startedTimeBegin"), _query_ms(request, "startedTimeEnd")
    prefix = q.get("prefix", "")
    chosen = []
    for task in _invoker(request).tasks(name):
        started = None if task.started is None else int(round(task.started * 1000))
        if (status is not None and task.status.value != status) or \
                not task.task_id.startswith(prefix) or \
                (begin is not None and (started is None or started < begin)) or \
                (end is not None and (started is None or started > end)):
            continue
        chosen.append(task)
    if order == "desc":
        chosen.reverse()
    token = q.get("nextToken")
    if token:  # the submission number of the first task of the page
        try:
            seq = int(token)
        except ValueError:
            raise _Fail(400, "InvalidArgument", f"nextToken {token!r} is not one this "
                        "harness gave") from None
        chosen = [t for t in chosen if (t.seq >= seq if order == "asc" else t.seq <= seq)]
    page = chosen[:limit]
    payload = (q.get("includePayload") or "").lower() == "true"
    doc: dict[str, Any] = {"tasks": [t.to_fc(_arn(name), include_payload=payload)
                                     for t in page]}
    if len(chosen) > limit:
        doc["nextToken"] = str(chosen[limit].seq)
    return web.json_response(doc)


async def _stop_async_task(request: web.Request, platform: Platform, rid: str) -> web.Response:
    name = _name(request, platform)
    task = _async_task(request, platform, name)
    try:
        await _invoker(request).stop(task)
    except ValueError as exc:
        raise _Fail(400, "InvalidArgument", str(exc)) from None
    return web.json_response({})


def add_fc_routes(router: web.UrlDispatcher) -> None:
    """Register the management routes (InvokeFunction stays with the gateway)."""
    fn = function_path() + "/{name}"
    r = router
    r.add_post(function_path(), _route(_create_function))
    r.add_get(function_path(), _route(_list_functions))
    r.add_get(fn, _route(_get_function))
    r.add_put(fn, _route(_update_function))
    r.add_delete(fn, _route(_delete_function))
    r.add_post(fn + "/triggers", _route(_create_trigger))
    r.add_get(fn + "/triggers", _route(_list_triggers))
    r.add_get(fn + "/triggers/{trigger}", _route(_get_trigger))
    r.add_put(fn + "/triggers/{trigger}", _route(_update_trigger))
    r.add_delete(fn + "/triggers/{trigger}", _route(_delete_trigger))
    r.add_put(fn + "/provision-config", _route(_put_provision))
    r.add_get(fn + "/provision-config", _route(_get_provision))
    r.add_delete(fn + "/provision-config", _route(_delete_provision))
    r.add_get(API_PREFIX + "/provision-configs", _route(_list_provisions))
    r.add_put(fn + "/concurrency", _route(_put_concurrency))
    r.add_get(fn + "/concurrency", _route(_get_concurrency))
    r.add_delete(fn + "/concurrency", _route(_delete_concurrency))
    r.add_get(API_PREFIX + "/concurrency-configs", _route(_list_concurrency))
    r.add_get(fn + "/instances", _route(_list_instances))
    r.add_post(fn + "/versions", _route(_publish_version))
    r.add_get(fn + "/versions", _route(_list_versions))
    r.add_delete(fn + "/versions/{version}", _route(_delete_version))
    r.add_post(fn + "/aliases", _route(_create_alias))
    r.add_get(fn + "/aliases", _route(_list_aliases))
    r.add_get(fn + "/aliases/{alias}", _route(_get_alias))
    r.add_put(fn + "/aliases/{alias}", _route(_update_alias))
    r.add_delete(fn + "/aliases/{alias}", _route(_delete_alias))
    r.add_put(fn + "/async-invoke-config", _route(_put_async_config))
    r.add_get(fn + "/async-invoke-config", _route(_get_async_config))
    r.add_delete(fn + "/async-invoke-config", _route(_delete_async_config))
    r.add_get(API_PREFIX + "/async-invoke-configs", _route(_list_async_configs))
    r.add_get(fn + "/async-tasks", _route(_list_async_tasks))
    r.add_get(fn + "/async-tasks/{task}", _route(_get_async_task))
    r.add_put(fn + "/async-tasks/{task}/stop", _route(_stop_async_task))
