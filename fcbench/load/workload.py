"""Workloads: what `fcbench run` sends where, and when (target, request, duration, arrival plan).

Key names: `Workload`, `load_workload`, `parse_duration`. Errors name file:line:key; relative
paths resolve against the workload's folder; credentials are refused (they come from the env)."""

from __future__ import annotations

import difflib
import json
import mimetypes
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator
from pydantic.alias_generators import to_camel

from .._yaml import LocatedDoc, decode_text, load_located, validate
from ..errors import SpecError, TraceFormatError, UsageError
from ..results import layout
from ..secrets import looks_secret
from . import plans
from ..spec import FunctionSpec, function_spec_from_doc, load_function_spec, masked_environment

__all__ = [
    "recorded_workload_doc",
    "workload_from_run",
    "DEFAULT_OUTPUT",
    "DEFAULT_REQUEST_TIMEOUT_S",
    "PLAN_KINDS",
    "PLAN_MODELS",
    "TARGET_MODELS",
    "TARGET_FORMS",
    "TARGET_KINDS",
    "PlanSpec",
    "RequestConfig",
    "TargetConfig",
    "Workload",
    "load_workload",
    "parse_duration",
    "target_from_url",
    "with_target",
    "workload_from_dict",
]

DEFAULT_OUTPUT = "results"
DEFAULT_REQUEST_TIMEOUT_S = 120.0
TARGET_KINDS = ("local", "url", "fc")
CREDENTIAL_ENV = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?", re.I)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"5m"``, ``"1h"``, ``"1h30m"``.

    Raises:
        ValueError: anything else (the message shows the accepted forms).
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as 90s, 5m or 1h")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    pos, total, parts = 0, 0.0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match or (match.group(2) is None and (parts or match.end() < len(text))):
            raise ValueError(f"cannot read {text!r} as a duration; write seconds (90) or a number "
                             "with a unit: 90s, 5m, 1h, 1h30m")
        total += float(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]
        parts += 1
        pos = match.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    if not parts:
        raise ValueError("a duration is a number of seconds or a string such as 90s, 5m or 1h")
    return total


#: No workload offers more than this (one Locust process sends ~8k req/s; this is many machines).
MAX_RATE = 100_000.0
#: Nor lasts longer (a year; simulate longer traces in pieces).
MAX_DURATION_S = 366 * 86400.0
MAX_USERS = 100_000


def _sane_rate(value: float) -> float:
    if value > MAX_RATE:
        raise ValueError(f"{value:g} requests per second is more than fcbench can send (at most "
                         f"{MAX_RATE:g}); lower it")
    return value


def _sane_duration(value: float) -> float:
    if value > MAX_DURATION_S:
        raise ValueError(f"{value:g} s is over a year (at most {MAX_DURATION_S:g} s); lower it")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_sane_duration)]
Rate = Annotated[float, AfterValidator(_sane_rate)]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------
# Arrival plans as written in YAML; `build` turns them into `fcbench.load.plans` objects.


class _PlanBase(_Model):
    seed: int | None = Field(None, description="default: the workload's seed")

    def build(self, seed: int, base: Path) -> plans.Plan:
        raise NotImplementedError


class PoissonSpec(_PlanBase):
    """Poisson arrivals at `rate` per second."""

    kind: Literal["poisson"]
    rate: Rate = Field(gt=0, description="requests per second")

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.poisson(self.rate, seed=seed)


class ConstantSpec(_PlanBase):
    """Evenly spaced arrivals at `rate` per second."""

    kind: Literal["constant"]
    rate: Rate = Field(gt=0, description="requests per second")

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.constant(self.rate)


class UniformSpec(_PlanBase):
    """Inter-arrival times uniform on [0, 2/rate]."""

    kind: Literal["uniform"]
    rate: Rate = Field(gt=0, description="requests per second")

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.uniform(self.rate, seed=seed)


class BurstSpec(_PlanBase):
    """`rateOn` for `onS` seconds, `rateOff` for `offS` seconds, repeated."""

    kind: Literal["burst"]
    rate_on: Rate = Field(gt=0, description="requests per second while on")
    on_s: Duration = Field(gt=0)
    off_s: Duration = Field(ge=0)
    rate_off: Rate = Field(0.0, ge=0, description="requests per second while off")
    process: Literal["poisson", "constant"] = "poisson"

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.burst(self.rate_on, self.on_s, self.off_s, rate_off=self.rate_off,
                           seed=seed, process=self.process)


class DiurnalSpec(_PlanBase):
    """A piecewise-linear rate curve over `period`, one rate per equal segment, repeated."""

    kind: Literal["diurnal"]
    rates: list[Annotated[Rate, Field(ge=0)]] = Field(min_length=1)
    period: Duration = Field(gt=0)

    @field_validator("rates")
    @classmethod
    def _some_traffic(cls, value: list[float]) -> list[float]:
        if max(value) <= 0:
            raise ValueError("at least one rate must be greater than 0 requests per second")
        return value

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.diurnal(self.rates, self.period, seed=seed)


class TraceSpec(_PlanBase):
    """Replay of one function of an Azure Functions 2019 per-minute CSV."""

    kind: Literal["trace"]
    file: str = Field(min_length=1, description="relative to the workload's folder")
    function: str = Field("top", description="HashFunction, index:N or top")
    compression: float = Field(1.0, gt=0, le=1e6, description="60 = one trace minute per second")
    start_minute: int = Field(0, ge=0)

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.trace(base / self.file, function=self.function,
                           compression=self.compression, seed=seed,
                           start_minute=self.start_minute)


class ClosedSpec(_PlanBase):
    """`users` users, each sending, awaiting the answer and thinking `thinkS` seconds."""

    kind: Literal["closed"]
    users: int = Field(ge=1, le=MAX_USERS)
    think: Literal["constant", "exponential"] = "constant"
    think_s: Duration = Field(1.0, ge=0)

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.closed(self.users, think=self.think, think_s=self.think_s, seed=seed)


#: plan kind -> its validated model (each builds its `fcbench.load.plans` plan): the one list
#: the loader, the errors, the union below and the docs read.
PLAN_MODELS: dict[str, type[_PlanBase]] = {
    get_args(m.model_fields["kind"].annotation)[0]: m
    for m in (PoissonSpec, ConstantSpec, UniformSpec, BurstSpec, DiurnalSpec, TraceSpec,
              ClosedSpec)}
PLAN_KINDS = tuple(PLAN_MODELS)
PlanSpec = Annotated[Union[tuple(PLAN_MODELS.values())], Field(discriminator="kind")]


# --------------------------------------------------------------------------------------------
# Target and request


class _TargetBase(_Model):
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


def _target_keys(kind: str) -> set[str]:
    model = TARGET_MODELS[kind]
    return {f.alias or name for name, f in model.model_fields.items()}


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
    from ..targets.fc import is_loopback

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
            close = difflib.get_close_matches(key, _FC_QUERY, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
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


def with_target(workload: Workload, text: str) -> Workload:
    """`workload` sent to the target ``--target`` names instead of its own (an fc URL without a
    function takes the workload's)."""
    target = target_from_url(text, function=workload.function_name)
    return workload.model_copy(update={"target": target})


class RequestConfig(_Model):
    """What each request carries."""

    body: Union[str, dict[str, Any], list[Any], None] = Field(
        None, description="@file (relative to the workload), a string, or JSON")
    content_type: str | None = None
    timeout: Duration = Field(DEFAULT_REQUEST_TIMEOUT_S, gt=0)


# --------------------------------------------------------------------------------------------
# Workload


class Workload(_Model):
    """A validated workload. Build it with `load_workload`, which also loads the function specs,
    checks files and builds the arrival plan, so that errors surface before a run starts."""

    name: str
    description: str = ""
    target: TargetConfig
    request: RequestConfig = RequestConfig()
    duration: Duration = Field(gt=0, description="seconds")
    seed: int = 0
    time_scale: float | None = Field(None, gt=0, le=1e6, description=(
        "how many times faster than real time the workload runs (default: a trace plan's "
        "compression, else 1); a local harness's idleTimeout and queue timeout are divided by it"))
    plan: PlanSpec
    output: str = Field(DEFAULT_OUTPUT, min_length=1,
                        description="parent folder of run folders, relative to the current dir")

    _source: Path | None = PrivateAttr(None)
    _plan: plans.Plan | None = PrivateAttr(None)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: str | Path,
                  name: str = "workload") -> Workload:
        """See `workload_from_dict`."""
        return workload_from_dict(data, base_dir=base_dir, name=name)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("name must start with a letter or digit and hold only letters, "
                             "digits, '.', '_' and '-' (at most 64 characters); it names the "
                             "run folder")
        return value

    @property
    def source(self) -> Path | None:
        """The workload file this came from (None when built from a dict)."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in this workload are resolved against."""
        return self._source.parent if self._source else Path.cwd()

    def resolve(self, relative: str | Path) -> Path:
        """A path from the workload, resolved against its folder."""
        return (self.base_dir / Path(relative).expanduser()).resolve()

    @property
    def function_specs(self) -> tuple[FunctionSpec, ...]:
        """The function specs a local target serves (empty for url and fc targets)."""
        return self.target.function_specs

    @property
    def time_scale_factor(self) -> float:
        """`timeScale`, else a trace plan's compression, else 1."""
        if self.time_scale is not None:
            return float(self.time_scale)
        return float(getattr(self.plan, "compression", 1.0))

    def scaled_specs(self) -> tuple[tuple[FunctionSpec, ...], dict[str, Any]]:
        """The local target's specs with idleTimeout and queue timeout divided by the time scale
        (unless `target.pinTimeouts`), and what was scaled, for run.yaml and the run header.

        Start-up and service times cannot be compressed: they stay real, so a compressed run
        still sees real cold starts against shortened idle periods."""
        scale = self.time_scale_factor
        specs = self.function_specs
        if scale == 1.0 or not specs or getattr(self.target, "pin_timeouts", False):
            why = "pinned" if scale != 1.0 and specs else None
            return specs, {"scale": scale, "scaled": {}, **({"timeouts": why} if why else {})}
        out, scaled = [], {}
        for spec in specs:
            h = spec.harness
            queue = h.queue.model_copy(update={"timeout": h.queue.timeout / scale})
            new = h.model_copy(update={"idle_timeout": h.idle_timeout / scale, "queue": queue})
            out.append(spec.model_copy(update={"harness": new}))
            scaled[spec.name] = {"idleTimeout": [h.idle_timeout, new.idle_timeout],
                                 "queue.timeout": [h.queue.timeout, queue.timeout]}
        return tuple(out), {"scale": scale, "scaled": scaled}

    def describe_load(self) -> str:
        """One line for the run header: offered load, and what time compression changed."""
        rate = None
        try:
            plan = self.plan_obj()
            if plan.open_loop:
                rate = plan.expected_count(self.duration) / self.duration
        except Exception:  # noqa: BLE001 - only a description
            rate = None
        text = f"offered load {rate:.3g} req/s" if rate is not None else "closed loop"
        _, time = self.scaled_specs()
        if time["scale"] != 1.0:
            text += f"; time runs {time['scale']:g}× faster than real"
            for name, keys in time["scaled"].items():
                parts = ", ".join(f"{k} {a:g} → {b:g} s" for k, (a, b) in keys.items())
                text += f"; {name}: {parts}"
            if time.get("timeouts") == "pinned":
                text += "; idle and queue timeouts pinned as written"
        return text

    @property
    def function_name(self) -> str | None:
        """The function requests go to: `target.function`, or the only local spec."""
        if self.target.function:
            return self.target.function
        specs = self.target.function_specs
        return specs[0].name if len(specs) == 1 else None

    @property
    def duration_s(self) -> float:
        """The run's length in seconds."""
        return self.duration

    @property
    def timeout_s(self) -> float:
        """Seconds to wait for each response."""
        return self.request.timeout

    @property
    def plan_seed(self) -> int:
        """The plan's own seed, else the workload's."""
        return self.seed if self.plan.seed is None else self.plan.seed

    def with_seed(self, seed: int) -> Workload:
        """This workload with another seed for its arrivals (a replication of it)."""
        out = self.model_copy(update={"seed": seed,
                                      "plan": self.plan.model_copy(update={"seed": None})})
        out._plan = None
        return out

    def plan_obj(self) -> plans.Plan:
        """The arrival plan (built once by `load_workload`; built here when missing)."""
        if self._plan is None:
            self._plan = self.plan.build(self.plan_seed, self.base_dir)
        return self._plan

    def request_body(self) -> tuple[bytes, str]:
        """The request body and its content type (given, else guessed from the file name).

        ``@file`` is read from disk; a mapping or list becomes JSON; a string is sent as UTF-8.
        """
        body, given = self.request.body, self.request.content_type
        if body is None:
            return b"", given or "application/octet-stream"
        if isinstance(body, str) and body.startswith("@"):
            path = self.resolve(body[1:])
            guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return path.read_bytes(), given or guessed
        if isinstance(body, (dict, list)):
            return json.dumps(body).encode(), given or "application/json"
        return body.encode(), given or "text/plain; charset=utf-8"

    def output_dir(self) -> Path:
        """The parent folder of run folders (`output`, relative to the current directory)."""
        return Path(self.output).expanduser()

    def to_run_yaml(self) -> dict[str, Any]:
        """This workload as plain values for run.yaml: durations in seconds, paths resolved,
        function specs with secret-looking environment values masked. Never credentials."""
        target = self.target.model_dump(by_alias=True, exclude_none=True, mode="json")
        if self.target.kind == "local":
            target["functions"] = [
                str(self.resolve(f)) if isinstance(f, str) else {"inline": f.get("functionName")}
                for f in self.target.functions]
            target["functionSpecs"] = [_masked_spec(s) for s in self.function_specs]
        if self.function_name:
            target["function"] = self.function_name
        request = self.request.model_dump(by_alias=True, exclude_none=True, mode="json")
        body = self.request.body
        if isinstance(body, str) and body.startswith("@"):
            request["body"] = "@" + str(self.resolve(body[1:]))
        elif body is not None and len(json.dumps(body)) > 1024:
            request["body"] = f"<inline, {len(json.dumps(body))} characters>"
        plan = self.plan.model_dump(by_alias=True, exclude_none=True, mode="json")
        plan["seed"] = self.plan_seed
        if isinstance(self.plan, TraceSpec):
            plan["file"] = str(self.resolve(self.plan.file))
        plan["resolved"] = self.plan_obj().to_dict()
        return {
            "name": self.name,
            "description": self.description,
            "source": str(self._source) if self._source else None,
            "target": target,
            "request": request,
            "duration": self.duration,
            "seed": self.seed,
            "plan": plan,
            "output": self.output,
            "time": self.scaled_specs()[1],
            "load": self.describe_load(),
        }


def _masked_spec(spec: FunctionSpec) -> dict[str, Any]:
    out = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    out["environmentVariables"] = masked_environment(spec)
    return out


# --------------------------------------------------------------------------------------------
# Loading


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
    import yaml

    run = Path(run_dir)
    path = run / layout.RUN_YAML
    if not path.is_file():
        raise UsageError(f"{run} is not a run folder (no {layout.RUN_YAML})")
    doc = yaml.safe_load(decode_text(path.read_bytes(), str(path))) or {}
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
    _reject_unknown_keys(doc, doc.data, Workload, ())
    raw_target = doc.data.get("target")
    if isinstance(raw_target, dict):
        kind = raw_target.get("kind", "local")
        if not isinstance(kind, str) or kind not in TARGET_MODELS:
            raise _err(doc, ("target", "kind"), f"unknown target kind {kind!r}; use one of "
                                                f"{', '.join(map(repr, TARGET_MODELS))}")
        _reject_foreign_target_keys(doc, raw_target, kind)
        _reject_unknown_keys(doc, raw_target, TARGET_MODELS[kind], ("target",))
    _reject_unknown_keys(doc, doc.data.get("request"), RequestConfig, ("request",))
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


def _err(doc: LocatedDoc, loc: tuple[Any, ...], message: str) -> SpecError:
    dotted = ""
    for part in loc:
        dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else str(part))
    return SpecError(message, file=doc.file, line=doc.line_of(loc), path=dotted or None)


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


def _reject_unknown_keys(doc: LocatedDoc, raw: Any, model: type[BaseModel],
                         loc: tuple[Any, ...], what: str = "") -> None:
    # Checked before pydantic so a misspelt key is reported as such, not as a missing one.
    if not isinstance(raw, dict):
        return
    known = sorted((f.alias or name for name, f in model.model_fields.items()),
                   key=lambda k: k != "kind")
    for key in raw:
        if key not in known and key not in model.model_fields:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            where = what or ("this section" if loc else "a workload")
            raise _err(doc, loc + (key,), f"unknown key; {hint}{where} takes "
                                          f"{', '.join(known)}")


def _validate_plan(doc: LocatedDoc, raw: Any) -> _PlanBase:
    kinds = ", ".join(PLAN_KINDS)
    if not isinstance(raw, dict):
        raise _err(doc, ("plan",), f"plan must be a mapping with a kind ({kinds})")
    if "kind" not in raw:
        raise _err(doc, ("plan",), f"plan needs a kind; use one of {kinds}")
    model = PLAN_MODELS.get(raw["kind"]) if isinstance(raw["kind"], str) else None
    if model is None:
        raise _err(doc, ("plan", "kind"), f"unknown plan kind {raw['kind']!r}; use one of {kinds}")
    _reject_unknown_keys(doc, raw, model, ("plan",), f"a {raw['kind']} plan")
    sub = LocatedDoc(data=raw, file=doc.file, lines=doc.lines)
    return validate(sub, model.model_validate, prefix=("plan",))


def _reject_foreign_target_keys(doc: LocatedDoc, raw: dict[str, Any], kind: str) -> None:
    """A key that belongs to another kind of target says which, instead of "unknown key"."""
    mine = _target_keys(kind)
    for key in raw:
        if key in mine:
            continue
        owners = [k for k in TARGET_MODELS if key in _target_keys(k)]
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
        _check_url(doc, ("target", "url"), target.url)
    else:
        if not target.function:
            raise _err(doc, ("target", "function"), "an fc target needs function (the FC "
                                                    "function name)")
        if not (target.region or target.endpoint):
            raise _err(doc, ("target",), "an fc target needs region (e.g. cn-hangzhou) or "
                                         "endpoint")
        if target.endpoint:
            _check_url(doc, ("target", "endpoint"), target.endpoint, scheme_optional=True)


def _check_url(doc: LocatedDoc, loc: tuple[Any, ...], url: str, *,
               scheme_optional: bool = False) -> None:
    parts = urlsplit(url if "://" in url or not scheme_optional else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _err(doc, loc, f"{url!r} is not an http(s) URL; write e.g. http://127.0.0.1:9080")
    if parts.username or parts.password:
        raise _err(doc, loc, "credentials never go in a workload file; remove the user:password "
                             "part of the URL")


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


def _build_plan(doc: LocatedDoc, wl: Workload) -> plans.Plan:
    try:
        return wl.plan.build(wl.plan_seed, wl.base_dir)
    except (OSError, TraceFormatError) as exc:
        raise _err(doc, ("plan", "file"), str(exc)) from None
    except ValueError as exc:
        key = "kind"
        if isinstance(wl.plan, TraceSpec):
            key = "startMinute" if str(exc).startswith("start_minute") else "function"
        raise _err(doc, ("plan", key), str(exc)) from None
