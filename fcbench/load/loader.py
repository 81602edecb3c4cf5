"""Reading workloads: a YAML file, an in-memory dict, or the workload a run folder's run.yaml
recorded (old run.yaml files too), checked before any run starts.

Key names: `load_workload`, `workload_from_dict`, `workload_from_run`, `recorded_workload_doc`.
Errors name file:line:key; relative paths resolve against the workload's folder; credentials
are refused (they come from the environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._model import located_error, reject_unknown_keys
from .._yaml import LocatedDoc, load_located, validate
from ..errors import SpecError, TraceFormatError, UsageError
from ..results import RunFolder, layout
from ..secrets import looks_secret
from ..spec import FunctionSpec, function_spec_from_doc, load_function_spec
from ..targets.config import CREDENTIAL_ENV, TARGET_MODELS, check_url, target_keys
from .openai_requests import OpenAIRequestConfig, request_generator
from .plans import PLAN_KINDS, PLAN_MODELS, Plan, TracePlan
from .workload import RequestConfig, Workload

__all__ = ["load_workload", "recorded_workload_doc", "workload_from_dict", "workload_from_run"]

_err = located_error  # every check below raises one, at a location of the document


def load_workload(path: str | Path) -> Workload:
    """Read and validate a workload YAML, its function specs, body file and arrival plan.

    Raises:
        SpecError: naming the file, line and key of the first problem (a function spec file's
            own problems name that file).
    """
    source = Path(path)
    return _load(load_located(source), source)


def workload_from_dict(data: dict[str, Any], *, base_dir: str | Path,
                       name: str = "workload") -> Workload:
    """A workload built in memory (a sweep level, a test), checked exactly as a file would be;
    relative paths (function specs, ``@body`` files, traces) resolve against `base_dir`.

    Raises:
        SpecError: the first problem, located as ``<name>: key``.
    """
    doc = LocatedDoc(data=data, file=f"<{name}>", lines={})
    return _load(doc, Path(base_dir) / f"{name}.yaml")


def workload_from_run(run_dir: str | Path) -> Workload:
    """The workload a run folder's ``run.yaml`` recorded (a measured or simulated run), rebuilt
    so it can be simulated again (see `recorded_workload_doc`).

    Raises:
        UsageError: no run.yaml, or one without a local target's workload.
    """
    data = recorded_workload_doc(run_dir)
    return workload_from_dict(data, base_dir=run_dir, name=str(data.get("name") or
                                                               Path(run_dir).name))


def recorded_workload_doc(run_dir: str | Path) -> dict[str, Any]:
    """The workload document a run folder's ``run.yaml`` recorded, as a workload YAML would
    hold it: its function specs inline (as recorded, secrets masked), its plan as written, its
    body dropped when the file is gone.

    Raises:
        UsageError: no run.yaml, or one without a local target's workload.
    """
    folder = RunFolder.of(run_dir)
    run, path = folder.path, folder.file(layout.RUN_YAML)
    if not folder.has(layout.RUN_YAML):
        raise UsageError(f"{run} is not a run folder (no {layout.RUN_YAML})")
    doc = folder.config()
    recorded = doc.get("workload") if isinstance(doc, dict) else None
    target = (recorded or {}).get("target") if isinstance(recorded, dict) else None
    if not isinstance(target, dict) or target.get("kind") != "local" \
            or not target.get("functionSpecs"):
        raise UsageError(f"{path} records no local target's function specs (only runs against "
                         "the local harness, or simulated ones, can be replayed)")
    data = {k: v for k, v in recorded.items() if k in ("name", "description", "duration",
                                                        "seed", "plan", "request")}
    data["target"] = {**{k: v for k, v in target.items()
                         if k not in ("functions", "functionSpecs", "function")},
                      "functions": target["functionSpecs"]}
    data["plan"] = {k: v for k, v in dict(data.get("plan") or {}).items()
                    if k not in ("resolved", "seed")}
    request = dict(data.get("request") or {})
    body = request.get("body")
    if isinstance(body, str) and (body.startswith("<inline") or body.startswith("@")
                                  and not Path(body[1:]).is_file()):
        request.pop("body", None)
        request.pop("contentType", None)
    data["request"] = request
    return data


def _load(doc: LocatedDoc, source: Path) -> Workload:
    if not isinstance(doc.data, dict):
        raise SpecError("a workload must be a YAML mapping with target, duration and plan",
                        file=doc.file, line=1)
    _reject_credentials(doc, doc.data, ())
    reject_unknown_keys(doc, doc.data, Workload, ())
    raw_target = doc.data.get("target")
    if isinstance(raw_target, dict):
        kind = raw_target.get("kind", "local")
        if not isinstance(kind, str) or kind not in TARGET_MODELS:
            raise _err(doc, ("target", "kind"), f"unknown target kind {kind!r}; use one of "
                                                f"{', '.join(map(repr, TARGET_MODELS))}")
        _reject_foreigntarget_keys(doc, raw_target, kind)
        reject_unknown_keys(doc, raw_target, TARGET_MODELS[kind], ("target",))
    raw_request = doc.data.get("request")
    reject_unknown_keys(doc, raw_request, RequestConfig, ("request",))
    if isinstance(raw_request, dict):
        reject_unknown_keys(doc, raw_request.get("openai"), OpenAIRequestConfig,
                            ("request", "openai"), "request.openai")
    data = dict(doc.data)
    if isinstance(raw_target, dict):
        data["target"] = {"kind": "local", **raw_target}  # a target without kind is local
    data.setdefault("name", source.stem)
    if "plan" in data:
        data["plan"] = _validate_plan(doc, data["plan"])
    workload = validate(LocatedDoc(data=data, file=doc.file, lines=doc.lines),
                        Workload.model_validate)
    workload._source = source.resolve()
    _check_target(doc, workload)
    _check_request(doc, workload)
    workload._plan = _build_plan(doc, workload)
    return workload


def _reject_credentials(doc: LocatedDoc, node: Any, loc: tuple[Any, ...]) -> None:
    if loc == ("target", "functions"):
        return  # function specs mask their own secret-looking environment values
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and looks_secret(key):
                raise _err(doc, loc + (key,),
                           "credentials never go in a workload file (they would end up in "
                           f"results); remove {key!r} and set {' and '.join(CREDENTIAL_ENV)} in "
                           "the environment instead")
            _reject_credentials(doc, value, loc + (key,))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _reject_credentials(doc, item, loc + (i,))


def _validate_plan(doc: LocatedDoc, raw: Any) -> Plan:
    kinds = ", ".join(PLAN_KINDS)
    if not isinstance(raw, dict):
        raise _err(doc, ("plan",), f"plan must be a mapping with a kind ({kinds})")
    if "kind" not in raw:
        raise _err(doc, ("plan",), f"plan needs a kind; use one of {kinds}")
    model = PLAN_MODELS.get(raw["kind"]) if isinstance(raw["kind"], str) else None
    if model is None:
        raise _err(doc, ("plan", "kind"), f"unknown plan kind {raw['kind']!r}; use one of {kinds}")
    reject_unknown_keys(doc, raw, model, ("plan",), f"a {raw['kind']} plan")
    sub = LocatedDoc(data=raw, file=doc.file, lines=doc.lines)
    return validate(sub, model.model_validate, prefix=("plan",))


def _reject_foreigntarget_keys(doc: LocatedDoc, raw: dict[str, Any], kind: str) -> None:
    """A key that belongs to another kind of target says which, instead of "unknown key"."""
    mine = target_keys(kind)
    for key in raw:
        if key in mine:
            continue
        owners = [k for k in TARGET_MODELS if key in target_keys(k)]
        if owners:
            raise _err(doc, ("target", key),
                       f"{key} applies only to target kind {' or '.join(map(repr, owners))}, "
                       f"not {kind!r}; remove it or change target.kind")


def _check_target(doc: LocatedDoc, wl: Workload) -> None:
    target, kind = wl.target, wl.target.kind
    if kind == "local":
        _load_specs(doc, wl)
    elif kind == "url":
        if not target.url:
            raise _err(doc, ("target", "url"), "a url target needs url, e.g. "
                                               "http://127.0.0.1:9080")
        check_url(doc, ("target", "url"), target.url)
    else:
        if not target.function:
            raise _err(doc, ("target", "function"), "an fc target needs function (the FC "
                                                    "function name)")
        if not (target.region or target.endpoint):
            raise _err(doc, ("target",), "an fc target needs region (e.g. cn-hangzhou) or "
                                         "endpoint")
        if target.endpoint:
            check_url(doc, ("target", "endpoint"), target.endpoint, scheme_optional=True)


def _load_specs(doc: LocatedDoc, wl: Workload) -> None:
    target = wl.target
    if not target.functions:
        raise _err(doc, ("target", "functions"),
                   "a local target needs functions: a list of function spec files (relative to "
                   "this workload) or inline specs")
    specs: list[FunctionSpec] = []
    for i, entry in enumerate(target.functions):
        loc = ("target", "functions", i)
        if isinstance(entry, str):
            file = wl.resolve(entry)
            if not file.is_file():
                raise _err(doc, loc, f"function spec file {entry!r} not found (looked for "
                                     f"{file}); paths are relative to the workload's folder")
            spec = load_function_spec(file)
        else:
            spec = function_spec_from_doc(LocatedDoc(data=entry, file=doc.file, lines=doc.lines),
                                          prefix=loc)
        if any(s.name == spec.name for s in specs):
            raise _err(doc, loc, f"function {spec.name!r} is listed twice; give each function "
                                 "once")
        specs.append(spec)
    names = [s.name for s in specs]
    if target.function is not None and target.function not in names:
        raise _err(doc, ("target", "function"),
                   f"function {target.function!r} is not among the target's functions "
                   f"({', '.join(names)}); use one of those names")
    if target.function is None and len(specs) > 1:
        raise _err(doc, ("target", "functions"),
                   f"the target serves {len(specs)} functions ({', '.join(names)}); say which one "
                   "to invoke with target.function")
    if target.virtual_gpus:
        from ..harness.gpus import parse_virtual_gpus
        try:
            parse_virtual_gpus(target.virtual_gpus)
        except ValueError as exc:
            raise _err(doc, ("target", "virtualGpus"), str(exc)) from None
    target._specs = tuple(specs)


def _check_request(doc: LocatedDoc, wl: Workload) -> None:
    _check_openai(doc, wl)
    _check_async(doc, wl)
    body = wl.request.body
    if isinstance(body, str) and body.startswith("@"):
        if not body[1:].strip():
            raise _err(doc, ("request", "body"), "write @ followed by a file name, e.g. "
                                                 "@images/sample.jpg")
        file = wl.resolve(body[1:])
        if not file.is_file():
            raise _err(doc, ("request", "body"),
                       f"request body file {body[1:]!r} not found (looked for {file}); paths "
                       "are relative to the workload's folder")


def _check_openai(doc: LocatedDoc, wl: Workload) -> None:
    """`request.openai` draws every body, so it takes no `body` or `contentType`; its dataset
    is read now, so a bad line is reported before the run (as dataset-file:line)."""
    openai = wl.request.openai
    if openai is None:
        return
    for key, value in (("body", wl.request.body), ("contentType", wl.request.content_type)):
        if value is not None:
            raise _err(doc, ("request", key), f"request.openai draws every request's body (JSON); "
                       f"remove request.{key}, or request.openai to send one fixed body")
    if openai.dataset is not None:
        file = wl.resolve(openai.dataset)
        if not file.is_file():
            raise _err(doc, ("request", "openai", "dataset"),
                       f"dataset file {openai.dataset!r} not found (looked for {file}); paths "
                       "are relative to the workload's folder")
    request_generator(wl)  # SpecError: the dataset's own file and line


def _check_async(doc: LocatedDoc, wl: Workload) -> None:
    """`request.invocationType: Async` needs the harness (tasks are collected from its FC API)
    and a body within FC's 128 KB asynchronous limit; `asyncWait` needs Async."""
    from ..fc import MAX_ASYNC_PAYLOAD_BYTES

    req = wl.request
    if not req.is_async:
        if req.async_wait is not None:
            raise _err(doc, ("request", "asyncWait"), "asyncWait is how long to wait for async "
                       "tasks; it needs invocationType: Async")
        return
    if wl.target.kind == "fc":
        raise _err(doc, ("request", "invocationType"), "asynchronous invocation goes to the "
                   "harness for now (a local or url target): fcbench collects the tasks "
                   "through the harness's FC API")
    if wl.function_name is None:
        raise _err(doc, ("target", "function"), "an asynchronous run collects its tasks from "
                   "one function: name it here")
    body = req.body
    size = None
    if isinstance(body, str) and body.startswith("@"):
        file = wl.resolve(body[1:])
        size = file.stat().st_size if file.is_file() else None
    elif body is not None:
        size = len(wl.request_body()[0])
    if size is not None and size > MAX_ASYNC_PAYLOAD_BYTES:
        raise _err(doc, ("request", "body"), f"the body is {size} bytes, more than FC's "
                   f"{MAX_ASYNC_PAYLOAD_BYTES} (128 KB) for an asynchronous invocation; pass "
                   "large inputs by reference (e.g. a URL in a small JSON body)")


def _build_plan(doc: LocatedDoc, wl: Workload) -> Plan:
    try:
        return wl.plan.bind(wl.plan_seed, wl.base_dir)
    except (OSError, TraceFormatError) as exc:
        raise _err(doc, ("plan", "file"), str(exc)) from None
    except ValueError as exc:
        key = "kind"
        if isinstance(wl.plan, TracePlan):
            key = "startMinute" if str(exc).startswith("start_minute") else "function"
        raise _err(doc, ("plan", key), str(exc)) from None

