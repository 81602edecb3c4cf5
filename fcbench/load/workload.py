"""A workload: what `fcbench run` sends where, and when (target, request, duration, arrival plan),
and how it is written into a run folder's run.yaml.

Key names: `Workload`, `RequestConfig`, `with_target`. Build one with
`fcbench.load.loader.load_workload` (or `workload_from_dict` / `workload_from_run`); target
configs and ``--target`` live in `fcbench.targets.config`, plan models in `load.plans`,
durations in `load.durations`. The names that lived here before stay importable from here.
"""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path
from typing import Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, field_validator

from .._model import Model
from ..spec import FunctionSpec, masked_environment
from ..targets.config import FcTargetConfig, TargetConfig, UrlTargetConfig, target_from_url
from .durations import Duration
from .openai_requests import CHAT_PATH, COMPLETIONS_PATH, OpenAIRequestConfig, api_path
from .plans import Plan, PlanSpec, TracePlan

__all__ = ["DEFAULT_OUTPUT", "DEFAULT_REQUEST_TIMEOUT_S", "RequestConfig", "Workload",
           "with_target"]

DEFAULT_OUTPUT = "results"
DEFAULT_REQUEST_TIMEOUT_S = 120.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

def with_target(workload: Workload, text: str) -> Workload:
    """`workload` sent to the target ``--target`` names instead of its own (an fc URL without a
    function takes the workload's)."""
    target = target_from_url(text, function=workload.function_name)
    return workload.model_copy(update={"target": target})


class RequestConfig(Model):
    """What each request carries, and how it is invoked."""

    body: Union[str, dict[str, Any], list[Any], None] = Field(
        None, description="@file (relative to the workload), a string, or JSON")
    content_type: str | None = None
    openai: OpenAIRequestConfig | None = Field(
        None, description="draw each request's body: an OpenAI-style completion (instead of "
        "body; see fcbench.load.openai_requests)")
    timeout: Duration = Field(DEFAULT_REQUEST_TIMEOUT_S, gt=0)
    invocation_type: Literal["Sync", "Async"] = Field(
        "Sync", description="FC's x-fc-invocation-type: Async sends each request as an async "
        "task (202 at once; the job runs later) and collects the tasks after the load")
    async_wait: Duration | None = Field(
        None, gt=0, description="with Async: seconds to wait after the load for the tasks to "
        "end (default: timeout)")

    @property
    def is_async(self) -> bool:
        """Requests go as FC asynchronous invocations (tasks)."""
        return self.invocation_type == "Async"

    @property
    def async_wait_s(self) -> float:
        """Seconds `fcbench run` waits after the load for async tasks to end."""
        return float(self.async_wait if self.async_wait is not None else self.timeout)



class Workload(Model):
    """A validated workload. Build it with `load_workload`, which also loads the function specs,
    checks files and builds the arrival plan, so that errors surface before a run starts."""

    name: str
    description: str = ""
    target: TargetConfig
    request: RequestConfig = RequestConfig()
    duration: Duration = Field(gt=0, description="seconds")
    seed: int = 0
    slo: str | None = Field(None, description=(
        "token objectives goodput is counted against, as `--slo` takes them: "
        "ttft=MS,tpot=MS[,e2el=MS]; `fcbench run --slo` overrides it"))
    time_scale: float | None = Field(None, gt=0, le=1e6, description=(
        "how many times faster than real time the workload runs (default: a trace plan's "
        "compression, else 1); a local harness's idleTimeout and queue timeout are divided by it"))
    plan: PlanSpec
    output: str = Field(DEFAULT_OUTPUT, min_length=1,
                        description="parent folder of run folders, relative to the current dir")

    _source: Path | None = PrivateAttr(None)
    _plan: Plan | None = PrivateAttr(None)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: str | Path,
                  name: str = "workload") -> Workload:
        """See `fcbench.load.loader.workload_from_dict`."""
        from .loader import workload_from_dict

        return workload_from_dict(data, base_dir=base_dir, name=name)

    @field_validator("slo")
    @classmethod
    def _check_slo(cls, value: str | None) -> str | None:
        if value is not None:
            from ..measures import parse_slo

            parse_slo(value)  # ValueError: the loader names the file, line and key
        return value

    @property
    def slo_objectives(self) -> dict[str, float] | None:
        """`slo` parsed (`fcbench.measures.parse_slo`), or None."""
        from ..measures import parse_slo

        return parse_slo(self.slo) if self.slo else None

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

    def send_target(self, harness_url: str | None = None) -> UrlTargetConfig | FcTargetConfig:
        """The url or fc target config requests go to (what `fcbench.targets.open_target`
        opens): a local target is the URL of the harness started for it, `harness_url`."""
        t = self.target
        if t.kind == "fc":
            return t
        url = harness_url if t.kind == "local" else t.url
        function = self.function_name if t.kind == "local" else t.function
        path = t.path
        if path is None and self.request.openai is not None:
            path = _openai_path(url if t.kind == "url" and not function else None,
                                self.request.openai.api)
        return UrlTargetConfig(kind="url", url=url, function=function, path=path)

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

    def plan_obj(self) -> Plan:
        """The arrival plan (built once by `load_workload`; built here when missing)."""
        if self._plan is None:
            self._plan = self.plan.bind(self.plan_seed, self.base_dir)
        return self._plan

    def request_body(self) -> tuple[bytes, str]:
        """The request body and its content type (given, else guessed from the file name).

        ``@file`` is read from disk; a mapping or list becomes JSON; a string is sent as UTF-8.
        With ``request.openai``, whose bodies differ per request, the first one drawn (where one
        body stands for all: a size check, a single invocation).
        """
        if self.request.openai is not None:
            from .openai_requests import request_generator

            first = request_generator(self).draw(0)  # type: ignore[union-attr]
            return first.body, first.content_type
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
        if self.request.openai is not None:
            from .openai_requests import request_generator

            request["openai"] = request_generator(self).to_dict()  # type: ignore[union-attr]
        plan = self.plan.model_dump(by_alias=True, exclude_none=True, mode="json")
        plan["seed"] = self.plan_seed
        if isinstance(self.plan, TracePlan):
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


def _openai_path(url: str | None, api: Literal["chat", "completions"]) -> str | None:
    """The path an OpenAI request goes to when the target names none: the API's
    (``v1/chat/completions``) after a harness function's HTTP trigger or a bare URL; a URL that
    already ends in ``/v1`` takes the rest, one that ends in the API's path nothing more."""
    full = api_path(api)
    if url is None:
        return full
    where = urlsplit(url).path.rstrip("/")
    if where.endswith(("/" + CHAT_PATH, "/" + COMPLETIONS_PATH)):
        return None
    return full[len("v1/"):] if where.endswith("/v1") else full


def _masked_spec(spec: FunctionSpec) -> dict[str, Any]:
    out = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    out["environmentVariables"] = masked_environment(spec)
    return out

