"""Serverless Devs ``s.yaml``: a function spec out as a 3.x file (component ``fc3``), and 3.x and
1.x files (component ``fc``, as in devsapp/start-fc-gpu) back in as a function spec.

Key names: `export_s_yaml`, `import_s_yaml` (-> `Imported`: the spec, its region, HTTP triggers,
and every key that was mapped or dropped), `spec_document` / `function_yaml` (a spec as a
FUNCTION.yaml mapping / text).

Environment references stay references: ``${env('NAME')}`` / ``${env.NAME}`` are kept as the
text ``${env('NAME')}`` in the imported spec (and so in a written FUNCTION.yaml), never replaced
by the importing shell's value; only `fcbench deploy` resolves them, in memory
(`fcbench.spec.resolve_env_refs`). ``${vars.NAME}`` is substituted: it is in the file.

Round trip: ``import_s_yaml(export_s_yaml(spec))`` gives an equal `FunctionSpec`. FC fields go
in ``props`` under their own names; `harness.minInstances`, `harness.scheduledActions` and
`harness.targetTrackingPolicies` are FC's provision config, so they go out as
``props.provisionConfig`` (``defaultTarget``, ``scheduledActions``, ``targetTrackingPolicies``),
and `harness.reservedConcurrency` as ``props.concurrencyConfig.reservedConcurrency``; the other
harness-only keys are not FC's and go in ``vars.x-fcbench.<resource>.harness`` (Serverless
Devs ignores variables nobody references).
"""

from __future__ import annotations

import json
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .._yaml import LocatedDoc, _dotted, load_located
from ..errors import SpecError
from ..fc import V1_INSTANCE_TYPES  # Serverless Devs 1.x instanceType -> FC 3.0 gpuType
from ..spec import (
    FC_PASSTHROUGH_KEYS,
    ContainerConfig,
    FunctionSpec,
    LifecycleHook,
    env_ref_text,
    function_spec_from_doc,
)
from .bodies import (
    DEFAULT_QUALIFIER,
    HTTP_METHODS,
    HttpTrigger,
    jsonable,
    trigger_config,
)

__all__ = ["EDITION", "EXTENSION", "Imported", "export_s_yaml", "function_yaml",
           "import_s_yaml", "spec_document"]

EDITION = "3.0.0"
COMPONENT = "fc3"
#: Where harness-only keys live in an exported file: ``vars.x-fcbench.<resource>.harness``.
EXTENSION = "x-fcbench"
#: `props` keys in the order the fc3 component documents them; any other FC field follows.
_PROPS_ORDER = ("region", "functionName", "description", "runtime", "cpu", "memorySize",
                "diskSize", "timeout", "instanceConcurrency", "gpuConfig",
                "customContainerConfig", "instanceLifecycleConfig", "environmentVariables")
DEFAULT_TRIGGER = HttpTrigger()
_REF = re.compile(r"\$\{\s*([^}]*?)\s*\}")
_ENV_CALL = re.compile(r"""^env\(\s*['"]([^'"]+)['"]\s*\)$""")


# ---- out ----------------------------------------------------------------------------------
#: harness keys that are FC's provision and concurrency configs (fc3's `provisionConfig` and
#: `concurrencyConfig`), so they go out there and not in the harness block
_FC_CONFIG_KEYS = ("minInstances", "scheduledActions", "targetTrackingPolicies",
                   "reservedConcurrency")
#: fc3 `provisionConfig` key -> harness key
_PROVISION_KEYS = {"defaultTarget": "minInstances", "scheduledActions": "scheduledActions",
                   "targetTrackingPolicies": "targetTrackingPolicies"}


def _harness_block(spec: FunctionSpec, base_dir: Path, *, drop: tuple[str, ...] = ()
                   ) -> dict[str, Any]:
    """Non-default harness keys, with `sampleRequest.file` relative to `base_dir`."""
    block = jsonable(spec.harness.model_dump(by_alias=True, exclude_none=True,
                                             exclude_defaults=True))
    for key in drop:
        block.pop(key, None)
    sample = block.get("sampleRequest")
    if isinstance(sample, dict) and sample.get("file"):
        sample["file"] = os.path.relpath(sample["file"], base_dir)
    return block


def _fc_document(spec: FunctionSpec) -> dict[str, Any]:
    doc = jsonable(spec.to_fc())
    return {k: v for k, v in doc.items() if v not in ("", {}, None)}


def spec_document(spec: FunctionSpec, *, base_dir: str | Path = ".") -> dict[str, Any]:
    """`spec` as a FUNCTION.yaml mapping: every FC field it sets, then the harness keys that
    differ from their defaults (`sampleRequest.file` relative to `base_dir`)."""
    doc = _fc_document(spec)
    block = _harness_block(spec, Path(base_dir).resolve())
    if block:
        doc["harness"] = block
    return doc


def function_yaml(spec: FunctionSpec, *, base_dir: str | Path = ".", header: str = "") -> str:
    """`spec_document` as YAML text, with `header` as a comment on top."""
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return lines + _dump(spec_document(spec, base_dir=base_dir))


def export_s_yaml(spec: FunctionSpec, *, region: str = "cn-hangzhou", access: str = "default",
                  trigger: HttpTrigger | None = DEFAULT_TRIGGER,
                  base_dir: str | Path = ".") -> str:
    """A Serverless Devs 3.x ``s.yaml`` (one ``fc3`` resource named after the function).

    Args:
        region: ``props.region``.
        access: the Serverless Devs credential alias (``s config``), never a secret itself.
        trigger: the HTTP trigger to declare (None: no ``triggers``).
        base_dir: the folder the file will be written to (relative paths are relative to it).
    """
    fc = _fc_document(spec)
    props: dict[str, Any] = {"region": region}
    for key in _PROPS_ORDER[1:]:
        if key in fc:
            props[key] = fc.pop(key)
    props.update(fc)
    if trigger is not None:
        props["triggers"] = [{"triggerName": trigger.name, "triggerType": "http",
                              "qualifier": trigger.qualifier,
                              "triggerConfig": trigger_config(trigger)}]
    h = spec.harness
    policies = jsonable(h.model_dump(by_alias=True, exclude_none=True, include={
        "scheduled_actions", "target_tracking_policies"}))
    if h.min_instances or policies:
        props["provisionConfig"] = {"defaultTarget": h.min_instances, **policies}
    if h.reserved_concurrency is not None:
        props["concurrencyConfig"] = {"reservedConcurrency": h.reserved_concurrency}
    doc: dict[str, Any] = {"edition": EDITION, "name": spec.name, "access": access}
    block = _harness_block(spec, Path(base_dir).resolve(), drop=_FC_CONFIG_KEYS)
    if block:
        doc["vars"] = {EXTENSION: {spec.name: {"harness": block}}}
    doc["resources"] = {spec.name: {"component": COMPONENT, "props": props}}
    header = (f"Serverless Devs 3.x, written by `fcbench deploy export` from function "
              f"{spec.name}.\nDeploy with `s deploy`; read back with `fcbench deploy import`. "
              f"vars.{EXTENSION} holds fcbench's\nharness-only keys (not FC fields; nothing "
              "references them, so Serverless Devs ignores them).")
    return "".join(f"# {line}\n" for line in header.splitlines()) + _dump(doc)


def _dump(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=100)


# ---- in -----------------------------------------------------------------------------------
@dataclass
class Imported:
    """An ``s.yaml`` read back: the function spec and what did not fit in it."""

    spec: FunctionSpec
    edition: str
    resource: str
    region: str | None = None
    triggers: list[HttpTrigger] = field(default_factory=list)
    #: ``old.key -> new.key`` for each key that was renamed on the way (1.x).
    mapped: list[str] = field(default_factory=list)
    #: ``key: why`` for each key fcbench's spec cannot hold.
    dropped: list[str] = field(default_factory=list)
    #: A spec key path -> (line, the s.yaml's own key path), for errors found after import
    #: (a deploy resolving ``${env(...)}`` references).
    locate: Callable[[str | None], tuple[int | None, str]] | None = field(
        default=None, repr=False, compare=False)

    @property
    def provision(self) -> int | None:
        """Provisioned instances the file asks for (`harness.minInstances`), None if none."""
        return self.spec.harness.min_instances or None


def import_s_yaml(path: str | Path, *, resource: str | None = None) -> Imported:
    """Read a Serverless Devs ``s.yaml`` (edition 3.x with component fc3, or 1.x with component
    fc / devsapp/fc) into a function spec.

    Args:
        resource: which resource (3.x) or service (1.x) to read, when the file has several.

    Raises:
        SpecError: naming the file, line and key of the first problem.
    """
    doc = load_located(path)
    data = doc.data
    if not isinstance(data, dict):
        raise SpecError("an s.yaml must be a mapping with `edition` and `resources` "
                        "(3.x) or `services` (1.x)", file=doc.file, line=1)
    edition = data.get("edition")
    if edition is None:
        raise SpecError("missing `edition`: 3.0.0 for Serverless Devs 3.x, 1.0.0 for 1.x",
                        file=doc.file, line=1, path="edition")
    text = str(edition)
    if text.startswith("3"):
        return _Reader(doc, text).v3(resource)
    if text.startswith("1"):
        return _Reader(doc, text).v1(resource)
    raise SpecError(f"edition {text!r} is not one fcbench reads (3.0.0 or 1.0.0)",
                    file=doc.file, line=doc.line_of(("edition",)), path="edition")


def _env_name(expr: str) -> str | None:
    """``env('X')`` / ``env.X`` (the inside of ``${...}``) -> ``X``; None for anything else."""
    env = _ENV_CALL.match(expr)
    return env.group(1) if env else (expr[4:] if expr.startswith("env.") else None)


_ENV_TEXT = re.compile(r"\$\{\s*env[.(]")


def _value_at(data: Any, path: str | None) -> Any:
    """The value at a dotted spec path (``a.b[0].c``) in `data`, or None."""
    node = data
    for part in re.findall(r"\[(\d+)\]|([^.\[\]]+)", path or ""):
        index, key = part
        if index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        elif key and isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return None
    return node


def _component(value: Any) -> str:
    """``devsapp/fc@1.2`` -> ``fc``."""
    return str(value or "").strip().split("/")[-1].split("@")[0]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or name): f for name, f in model.model_fields.items()}


class _Reader:
    """Builds a spec mapping from an s.yaml, remembering where each value came from, so a
    validation error names the s.yaml's own line and key."""

    def __init__(self, doc: LocatedDoc, edition: str) -> None:
        self.doc = doc
        self.edition = edition
        self.data: dict[str, Any] = {}
        self.origin: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.mapped: list[str] = []
        self.dropped: list[str] = []
        self.root: tuple[Any, ...] = ()

    # -- errors and values --
    def error(self, message: str, loc: tuple[Any, ...]) -> SpecError:
        return SpecError(message, file=self.doc.file, line=self.doc.line_of(loc),
                         path=_dotted(loc) or None)

    def drop(self, loc: tuple[Any, ...], why: str) -> None:
        self.dropped.append(f"{_dotted(loc)}: {why}")

    def resolve(self, value: Any, loc: tuple[Any, ...], *, deep: bool = True,
                depth: int = 0) -> Any:
        """`${vars.a.b}` substituted, `${env('X')}` / `${env.X}` kept as the text
        ``${env('X')}``; a `{{ x }}` left by an unrun ``s init`` is an error."""
        if depth > 10:
            raise self.error("variables refer to each other in a loop", loc)
        if isinstance(value, str):
            whole = _REF.fullmatch(value.strip())
            if whole:
                found = self.lookup(whole.group(1), loc)
                if _env_name(whole.group(1)) is not None:
                    return found  # a reference, kept as text: nothing more to substitute
                return self.resolve(found, loc, deep=deep, depth=depth + 1)
            value = _REF.sub(lambda m: str(self.lookup(m.group(1), loc)), value)
            if "{{" in value and "}}" in value:
                raise self.error(f"{value!r} is a template placeholder that `s init` fills; "
                                 "put a value there", loc)
            return value
        if deep and isinstance(value, dict):
            return {k: self.resolve(v, loc + (k,), depth=depth) for k, v in value.items()}
        if deep and isinstance(value, list):
            return [self.resolve(v, loc + (i,), depth=depth) for i, v in enumerate(value)]
        return value

    def lookup(self, expr: str, loc: tuple[Any, ...]) -> Any:
        name = _env_name(expr)
        if name is not None:
            # never the importing shell's value: a secret would land in the written file
            return env_ref_text(name)
        if expr.startswith("vars."):
            node: Any = self.doc.data.get("vars")
            for part in expr.split(".")[1:]:
                if not isinstance(node, dict) or part not in node:
                    raise self.error(f"${{{expr}}}: no such variable under `vars`", loc)
                node = node[part]
            return node
        raise self.error(f"cannot resolve ${{{expr}}}: fcbench resolves ${{vars.NAME}} and "
                         "${env('NAME')} only; put the value itself there", loc)

    # -- building the spec mapping --
    def put(self, spec_loc: tuple[Any, ...], loc: tuple[Any, ...], value: Any) -> None:
        value = self.resolve(value, loc)
        node = self.data
        for i, key in enumerate(spec_loc[:-1]):
            self.origin.setdefault(spec_loc[:i + 1], loc)
            node = node.setdefault(key, {})
        node[spec_loc[-1]] = value
        self._record(spec_loc, loc, value)

    def _record(self, spec_loc: tuple[Any, ...], loc: tuple[Any, ...], value: Any) -> None:
        self.origin[spec_loc] = loc
        if isinstance(value, dict):
            for k, v in value.items():
                self._record(spec_loc + (k,), loc + (k,), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self._record(spec_loc + (i,), loc + (i,), v)

    def copy(self, annotation: Any, spec_loc: tuple[Any, ...], loc: tuple[Any, ...],
             value: Any) -> None:
        """Copy `value` into the spec at `spec_loc`, keeping the keys `annotation`'s model has
        and dropping (with a note) the FC keys fcbench's spec does not model."""
        value = self.resolve(value, loc, deep=False)
        model = _model_of(annotation)
        if model is None or not isinstance(value, dict):
            self.put(spec_loc, loc, value)
            return
        known = _fields(model)
        if not value:
            self.put(spec_loc, loc, {})
        for key, item in value.items():
            if key in known:
                self.copy(known[key].annotation, spec_loc + (key,), loc + (key,), item)
            else:
                self.drop(loc + (key,), "not a field of fcbench's function spec")

    def spec(self) -> FunctionSpec:
        lines = {sl: self.doc.line_of(ol) or 1 for sl, ol in self.origin.items()}
        lines[()] = self.doc.line_of(self.root) or 1
        located = LocatedDoc(data=self.data, file=self.doc.file, lines=lines)
        try:
            return function_spec_from_doc(located)
        except SpecError as exc:
            message, value = exc.message, _value_at(self.data, exc.path)
            if isinstance(value, str) and _ENV_TEXT.search(value) \
                    and message.startswith("Input should be a valid"):  # a number, a flag...
                message = ("an ${env(...)} reference stays unresolved until `fcbench deploy`, so "
                           "it can only stand for text (an environment value, an image, a "
                           "role); put the value itself in this field")
            raise SpecError(message, file=exc.file, line=exc.line,
                            path=self._origin_path(exc.path)) from None

    def locate(self, path: str | None) -> tuple[int | None, str]:
        """A spec key path as the s.yaml's line and key path."""
        loc = self._origin_loc(path)
        return self.doc.line_of(loc[0]), _dotted(loc[0]) + loc[1]

    def _origin_loc(self, path: str | None) -> tuple[tuple[Any, ...], str]:
        if not path:
            return self.root, ""
        best, best_len, tail = self.root, -1, "." + path
        for spec_loc, loc in self.origin.items():
            dotted = _dotted(spec_loc)
            matches = path == dotted or path.startswith((dotted + ".", dotted + "["))
            if matches and len(dotted) > best_len:
                best, best_len, tail = loc, len(dotted), path[len(dotted):]
        return best, tail

    def _origin_path(self, path: str | None) -> str:
        """A spec key path (``gpuConfig.gpuMemorySize``) as the s.yaml's own key path."""
        best, tail = self._origin_loc(path)
        return _dotted(best) + tail

    # -- the two editions --
    def pick(self, section: str, components: tuple[str, ...], resource: str | None
             ) -> tuple[str, dict[str, Any]]:
        items = self.doc.data.get(section)
        if not isinstance(items, dict) or not items:
            raise self.error(f"Serverless Devs {self.edition[0]}.x keeps functions under "
                             f"`{section}` (a mapping of name -> component, props)", (section,))
        ours = [k for k, v in items.items()
                if isinstance(v, dict) and _component(v.get("component")) in components]
        want = " or ".join(components)
        if resource is not None:
            if resource not in items:
                raise self.error(f"no {section[:-1]} {resource!r} (there are: "
                                 f"{', '.join(map(str, items))})", (section,))
            if resource not in ours:
                raise self.error(f"component is {items[resource].get('component')!r}, not "
                                 f"{want}", (section, resource, "component"))
            ours = [resource]
        if not ours:
            found = ", ".join(f"{k} ({v.get('component') if isinstance(v, dict) else '?'})"
                              for k, v in items.items())
            raise self.error(f"no resource with component {want} (found {found})", (section,))
        if len(ours) > 1:
            raise self.error(f"several {want} resources ({', '.join(ours)}): choose one with "
                             "--resource NAME", (section,))
        key = ours[0]
        for other in items:
            if other != key:
                self.drop((section, other), "another resource; import reads one")
        node = items[key]
        for extra in node:
            if extra not in ("component", "props"):
                self.drop((section, key, extra), "not part of a function")
        props = node.get("props")
        if not isinstance(props, dict):
            raise self.error("props must be a mapping of the function's settings",
                             (section, key, "props"))
        return key, props

    def v3(self, resource: str | None) -> Imported:
        key, props = self.pick("resources", (COMPONENT,), resource)
        root = self.root = ("resources", key, "props")
        region = None
        triggers: list[HttpTrigger] = []
        fc_fields = {k: f for k, f in _fields(FunctionSpec).items()
                     if k not in ("harness", "passthrough")}
        harness = (self.doc.data.get("vars") or {})
        harness = harness.get(EXTENSION) if isinstance(harness, dict) else None
        harness = harness.get(key) if isinstance(harness, dict) else None
        if isinstance(harness, dict) and "harness" in harness:
            self.put(("harness",), ("vars", EXTENSION, key, "harness"), harness["harness"])
        for name, value in props.items():
            loc = root + (name,)
            if name == "region":
                region = self.resolve(value, loc)
            elif name == "triggers":
                triggers = self.triggers(value, loc, v1=False)
            elif name == "provisionConfig":
                self.provision(value, loc)
            elif name == "concurrencyConfig":
                self.concurrency(value, loc)
            elif name in fc_fields:
                self.copy(fc_fields[name].annotation, (name,), loc, value)
            elif name in FC_PASSTHROUGH_KEYS:
                self.passthrough(name, value, loc)
            else:
                self.drop(loc, "not a field of fcbench's function spec")
        return Imported(self.spec(), self.edition, key, region, triggers, self.mapped,
                        self.dropped, self.locate)

    def passthrough(self, name: str, value: Any, loc: tuple[Any, ...]) -> None:
        """An FC key the spec carries as given (role, vpcConfig, ...): fc3's own shorthands
        (``auto``, a local ``code`` folder) mean nothing to FC's API and are dropped."""
        value = self.resolve(value, loc, deep=False)
        if value == "auto":
            self.drop(loc, "`auto` is the fc3 component's shorthand (it creates the resource); "
                      "FC's API needs the real value")
        elif name == "code" and isinstance(value, str):
            self.drop(loc, "a local code folder (the fc3 component uploads it); a custom "
                      "container runs its image")
        else:
            self.put((name,), loc, value)

    def provision(self, value: Any, loc: tuple[Any, ...]) -> None:
        value = self.resolve(value, loc)
        if not isinstance(value, dict):
            raise self.error("provisionConfig must be a mapping with defaultTarget", loc)
        for name in value:
            key = _PROVISION_KEYS.get(name)
            if key is not None:
                self.put(("harness", key), loc + (name,), value[name])
                self.mapped.append(f"{_dotted(loc + (name,))} -> harness.{key}")
            else:
                self.drop(loc + (name,), "the harness never freezes an idle instance "
                          "(alwaysAllocateCPU/GPU)" if name.startswith("alwaysAllocate")
                          else "not a provision config field")

    def concurrency(self, value: Any, loc: tuple[Any, ...]) -> None:
        value = self.resolve(value, loc)
        if not isinstance(value, dict):
            raise self.error("concurrencyConfig must be a mapping with reservedConcurrency",
                             loc)
        for name in value:
            if name == "reservedConcurrency":
                self.put(("harness", "reservedConcurrency"), loc + (name,), value[name])
                self.mapped.append(f"{_dotted(loc + (name,))} -> harness.reservedConcurrency")
            else:
                self.drop(loc + (name,), "not a concurrency config field")

    def triggers(self, value: Any, loc: tuple[Any, ...], *, v1: bool) -> list[HttpTrigger]:
        value = self.resolve(value, loc, deep=False)
        if not isinstance(value, list):
            raise self.error("triggers must be a list", loc)
        out: list[HttpTrigger] = []
        for i, item in enumerate(value):
            iloc = loc + (i,)
            item = self.resolve(item, iloc)
            if not isinstance(item, dict):
                raise self.error("a trigger must be a mapping", iloc)
            kind = item.get("type" if v1 else "triggerType")
            if kind != "http":
                self.drop(iloc, f"a {kind} trigger; fcbench deploys HTTP triggers only")
                continue
            cfg_key = "config" if v1 else "triggerConfig"
            config = item.get(cfg_key) or {}
            if isinstance(config, str):
                try:
                    config = json.loads(config)
                except ValueError:
                    raise self.error("triggerConfig is not JSON", iloc + (cfg_key,)) from None
            if not isinstance(config, dict):
                raise self.error("a trigger's config must be a mapping", iloc + (cfg_key,))
            methods = config.get("methods") or list(HTTP_METHODS)
            try:
                out.append(HttpTrigger(
                    name=str(item.get("name" if v1 else "triggerName") or f"httpTrigger{i}"),
                    auth_type=str(config.get("authType", "function")),
                    methods=tuple(str(m).upper() for m in methods),
                    qualifier=str(item.get("qualifier") or DEFAULT_QUALIFIER)))
            except SpecError as exc:
                sub = (exc.path or "").split(".")[-1]
                raise self.error(exc.message, iloc + (cfg_key, sub)) from None
            for extra in config:
                if extra not in ("authType", "methods"):
                    self.drop(iloc + (cfg_key, extra), "fcbench's trigger has authType and "
                              "methods only")
        return out

    def v1(self, resource: str | None) -> Imported:
        key, props = self.pick("services", ("fc",), resource)
        root = ("services", key, "props")
        self.root = root + ("function",)
        region = None
        triggers: list[HttpTrigger] = []
        function: Any = None
        for name, value in props.items():
            loc = root + (name,)
            if name == "region":
                region = self.resolve(value, loc)
            elif name == "function":
                function = self.resolve(value, loc, deep=False)
            elif name == "triggers":
                triggers = self.triggers(value, loc, v1=True)
            elif name == "service":
                self.v1_service(self.resolve(value, loc, deep=False), loc)
            else:
                self.drop(loc, "not part of a function")
        if not isinstance(function, dict):
            raise self.error("props.function must be the function's settings (name, "
                             "customContainerConfig, ...)", root + ("function",))
        for name, value in function.items():
            self.v1_field(name, value, self.root + (name,))
        return Imported(self.spec(), self.edition, key, region, triggers, self.mapped,
                        self.dropped, self.locate)

    def v1_service(self, service: Any, loc: tuple[Any, ...]) -> None:
        """FC 3.0 has no services: a 1.x service's role and internet access become the
        function's; its log, VPC and NAS settings changed shape in 3.0 and are dropped."""
        if not isinstance(service, dict):
            self.drop(loc, "FC 3.0 has no services")
            return
        plain = [k for k in service if k in ("name", "description", "tracingConfig")]
        self.drop(loc, f"service {service.get('name')} ({', '.join(plain) or 'no name'}): "
                  "FC 3.0 has no services")
        for key, value in service.items():
            kloc = loc + (key,)
            if key in ("role", "internetAccess"):
                self.passthrough(key, value, kloc)
                self.mapped.append(f"{_dotted(kloc)} -> {key} (FC 3.0: a function setting)")
            elif key not in plain:
                self.drop(kloc, "a 1.x service setting; FC 3.0 sets it per function, in "
                          "another shape")

    def v1_field(self, name: str, value: Any, loc: tuple[Any, ...]) -> None:
        same = ("description", "runtime", "memorySize", "cpu", "diskSize", "timeout",
                "instanceConcurrency", "environmentVariables")
        renamed = {"name": ("functionName",), "caPort": ("customContainerConfig", "port"),
                   "gpuMemorySize": ("gpuConfig", "gpuMemorySize"),
                   "initializer": ("instanceLifecycleConfig", "initializer", "handler"),
                   "initializationTimeout": ("instanceLifecycleConfig", "initializer",
                                             "timeout")}
        if name in same:
            self.put((name,), loc, value)
        elif name in renamed:
            self.put(renamed[name], loc, value)
            self.mapped.append(f"{_dotted(loc)} -> {_dotted(renamed[name])}")
        elif name == "instanceType":
            kind = str(self.resolve(value, loc))
            gpu = V1_INSTANCE_TYPES.get(kind, kind if kind.startswith("fc.gpu.") else None)
            if gpu is None:
                self.drop(loc, f"{kind} is a CPU instance type; FC 3.0 sizes CPU functions by "
                          "cpu and memorySize")
            else:
                self.put(("gpuConfig", "gpuType"), loc, gpu)
                self.mapped.append(f"{_dotted(loc)} {kind} -> gpuConfig.gpuType {gpu}")
        elif name == "customContainerConfig":
            self.v1_container(self.resolve(value, loc, deep=False), loc)
        elif name == "instanceLifecycleConfig":
            value = self.resolve(value, loc, deep=False)
            for hook, item in (value or {}).items() if isinstance(value, dict) else ():
                if hook == "preStop":
                    self.copy(LifecycleHook, ("instanceLifecycleConfig", "preStop"),
                              loc + (hook,), item)
                else:
                    self.drop(loc + (hook,), "FC 3.0 custom containers have initializer and "
                              "preStop hooks only")
        else:
            self.drop(loc, "not a field of fcbench's function spec (FC 3.0: ignored or no "
                      "equivalent for a custom container)")

    def v1_container(self, value: Any, loc: tuple[Any, ...]) -> None:
        if not isinstance(value, dict):
            raise self.error("customContainerConfig must be a mapping with image", loc)
        # FC 2.0 `command` is the image's ENTRYPOINT and `args` its CMD; FC 3.0 calls them
        # `entrypoint` and `command`. 1.x files often give them as JSON strings.
        renamed = {"command": "entrypoint", "args": "command"}
        known = _fields(ContainerConfig)
        for name, item in value.items():
            iloc = loc + (name,)
            if name == "instanceID":  # ACR Enterprise Edition instance: renamed in 3.0
                self.put(("customContainerConfig", "acrInstanceId"), iloc, item)
                self.mapped.append(f"{_dotted(iloc)} -> customContainerConfig.acrInstanceId")
            elif name in known and name not in renamed:
                self.copy(known[name].annotation, ("customContainerConfig", name), iloc, item)
            elif name in renamed:
                item = self.resolve(item, iloc)
                if isinstance(item, str):
                    try:
                        item = json.loads(item) if item.strip().startswith("[") else item.split()
                    except ValueError:
                        raise self.error("not a JSON list of strings", iloc) from None
                self.put(("customContainerConfig", renamed[name]), iloc, item)
                self.mapped.append(f"{_dotted(iloc)} -> customContainerConfig.{renamed[name]}")
            else:
                self.drop(iloc, "no FC 3.0 custom-container equivalent in fcbench's spec")
