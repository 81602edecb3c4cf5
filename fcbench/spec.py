"""Function specs: FC 3.0 `CreateFunction` fields in YAML, validated into frozen objects.

Key names: `FunctionSpec`, `HarnessOptions`, `SampleRequest`, `load_function_spec`,
`function_spec_from_dict`, `updated_spec` (FC's UpdateFunction), `TriggerSpec` / `trigger_from_dict`
(CreateTrigger), `ProvisionSpec` / `provision_from_dict` (PutProvisionConfig). FC 3.0's rules
(gpuMemorySize a multiple of 1024 MB, instanceConcurrency 1-100, cpu 0.05-16 in 0.05 steps at
1:1-1:4 vCPU : GB, health-check ranges) are checked here once, for YAML files and API bodies alike.
Past this module no code indexes a raw spec dict.
"""

from __future__ import annotations

import json
import logging
import math
import mimetypes
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationInfo, field_validator,
                      model_validator)
from pydantic.alias_generators import to_camel

from ._yaml import LocatedDoc, _dotted, load_located, validate
from .errors import SpecError
from .harness.gpus import GPU_TYPES  # FC's gpuType values (a leaf module: no cycle)
from .secrets import MASK, looks_secret

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_PORT",
    "ContainerConfig",
    "FunctionSpec",
    "GpuConfig",
    "HarnessOptions",
    "HealthCheckConfig",
    "HttpTriggerConfig",
    "ProvisionSpec",
    "SampleRequest",
    "TriggerSpec",
    "function_spec_from_dict",
    "load_function_spec",
    "load_function_specs",
    "provision_from_dict",
    "trigger_from_dict",
    "updated_spec",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 9000
DEFAULT_IDLE_TIMEOUT_S = 300.0  # FC reclaims idle instances after "usually 3-5 min"
DEFAULT_MAX_INSTANCES = 10
DEFAULT_QUEUE_SIZE = 100
DEFAULT_QUEUE_TIMEOUT_S = 60.0
DEFAULT_START_TIMEOUT_S = 120.0

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")

#: CreateFunction keys FC knows and the harness does not act on (role, networking, logs...):
#: accepted and kept, so one spec deploys to FC unchanged; anything else is a typo.
FC_PASSTHROUGH_KEYS = frozenset({
    "code", "customDNS", "customRuntimeConfig", "disableInjectCredentials", "disableOndemand",
    "enableLongLiving", "handler", "idleTimeout", "instanceIsolationMode", "internetAccess",
    "juiceFsConfig", "layers", "logConfig", "microSandboxConfig", "nasConfig", "ossMountConfig",
    "polarFsConfig", "resourceGroupId", "role", "sessionAffinity", "sessionAffinityConfig",
    "tags", "tracingConfig", "vpcConfig"})
_CPU_STEP = 0.05


class _Spec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True,
        strict=False,
    )


class HealthCheckConfig(_Spec):
    """`customContainerConfig.healthCheckConfig`: the readiness probe (FC's ranges and defaults).

    After `initialDelaySeconds` from launch, ``GET httpGetUrl`` every `periodSeconds`, each
    within `timeoutSeconds`; `successThreshold` answers in a row below 400 make the instance
    ready, `failureThreshold` failures in a row fail its start."""

    http_get_url: str
    initial_delay_seconds: int = Field(0, ge=0, le=120)
    period_seconds: int = Field(3, ge=1, le=120)
    timeout_seconds: int = Field(1, ge=1, le=3)
    failure_threshold: int = Field(3, ge=1, le=120)
    success_threshold: int = Field(1, ge=1, le=120)

    @field_validator("http_get_url")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("httpGetUrl is a path on the instance and starts with /, "
                             "e.g. /ready")
        return value


class ContainerConfig(_Spec):
    """`customContainerConfig`: what runs inside an instance."""

    image: str | None = None
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    health_check_config: HealthCheckConfig | None = None
    # FC-only (image acceleration, ACR EE); kept for deploy, not acted on by the harness
    acceleration_type: str | None = None
    acr_instance_id: str | None = None
    registry_config: dict[str, Any] | None = None


class GpuConfig(_Spec):
    """`gpuConfig`: the GPU memory an instance reserves (MB) and the GPU family."""

    gpu_memory_size: int = Field(gt=0, description="MB, a multiple of 1024")
    gpu_type: str = "fc.gpu.tesla.1"

    @field_validator("gpu_memory_size")
    @classmethod
    def _whole_gb(cls, value: int) -> int:
        if value % 1024:
            raise ValueError(f"gpuMemorySize is in MB and FC takes multiples of 1024; use "
                             f"{max(1, round(value / 1024)) * 1024} (or another multiple)")
        return value

    @field_validator("gpu_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in GPU_TYPES:  # FC adds types over time: accepted, said once here
            log.warning("gpuType %r is not one of FC's %s; accepted as given", value,
                        ", ".join(GPU_TYPES))
        return value


class Initializer(_Spec):
    handler: str = "initialize"
    timeout: float = Field(60.0, gt=0)
    command: list[str] | None = None


class LifecycleHook(_Spec):
    """`instanceLifecycleConfig.preStop`: FC sends ``GET /pre-stop`` to a custom container
    within `timeout` seconds before stopping it."""

    handler: str = ""
    timeout: float = Field(10.0, gt=0)
    command: list[str] | None = None


class LifecycleConfig(_Spec):
    """`instanceLifecycleConfig`: initializer and pre-stop hooks."""

    initializer: Initializer | None = None
    pre_stop: LifecycleHook | None = None


class QueueOptions(_Spec):
    """Bounded FIFO queue for requests that find no slot and no room to start an instance."""

    size: int = Field(DEFAULT_QUEUE_SIZE, ge=0)
    timeout: float = Field(DEFAULT_QUEUE_TIMEOUT_S, gt=0, description="seconds")


class SampleRequest(_Spec):
    """`harness.sampleRequest`: a request the function answers, sent by `fcbench coldstart
    profile` / `sweep` when no request body is given. Exactly one of `file` (a path relative to
    the spec file), `json` (any JSON value) or `text`; `contentType` overrides the one guessed
    (from the file name; ``application/json``; ``text/plain``)."""

    file: str | None = None
    json_value: Any = Field(None, alias="json")
    text: str | None = None
    content_type: str | None = None

    @model_validator(mode="after")
    def _one_body(self) -> SampleRequest:
        given = [k for k, v in (("file", self.file), ("json", self.json_value),
                                ("text", self.text)) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of file, json or text "
                             f"(got {', '.join(given) if given else 'none'})")
        if self.file is not None and not self.file.strip():
            raise ValueError("file must name a file, e.g. ../images/sample.jpg")
        return self

    def body(self) -> tuple[bytes, str]:
        """The request body and its content type.

        Raises:
            SpecError: the file cannot be read.
        """
        if self.file is not None:
            path = Path(self.file)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise SpecError(f"cannot read the sample request file {path} "
                                f"({exc.strerror})", path="harness.sampleRequest.file") from None
            guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return data, self.content_type or guessed
        if self.text is not None:
            return self.text.encode(), self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.json_value).encode(), self.content_type or "application/json"

    def describe(self) -> str:
        """A short label, e.g. ``file /x/sample.jpg`` or ``json {"sleep_ms": 5}``."""
        if self.file is not None:
            return f"file {self.file}"
        if self.text is not None:
            return f"text {self.text[:60]!r}"
        return f"json {json.dumps(self.json_value)[:60]}"


class HarnessOptions(_Spec):
    """Harness-only keys (ignored by FC): how the local platform runs this function."""

    runtime: Literal["process", "docker"] = "process"
    idle_timeout: float = Field(DEFAULT_IDLE_TIMEOUT_S, gt=0, description="seconds")
    max_instances: int = Field(DEFAULT_MAX_INSTANCES, ge=1)
    min_instances: int = Field(0, ge=0, description="provisioned instances: started at once "
                               "and never reclaimed (FC's provision config defaultTarget)")
    queue: QueueOptions = QueueOptions()
    start_timeout: float = Field(DEFAULT_START_TIMEOUT_S, gt=0, description="seconds")
    command: list[str] | None = Field(
        None, description="process runtime: argv to run instead of `python -m fcbench.server`")
    sample_request: SampleRequest | None = Field(
        None, description="the request `coldstart profile`/`sweep` send when given none")

    @model_validator(mode="after")
    def _min_within_max(self) -> HarnessOptions:
        if self.min_instances > self.max_instances:
            raise ValueError(f"minInstances {self.min_instances} is more than maxInstances "
                             f"{self.max_instances}; lower it or raise maxInstances")
        return self


class FunctionSpec(_Spec):
    """One function, as FC 3.0 `CreateFunction` names it, plus a `harness:` section."""

    function_name: str
    description: str = ""
    runtime: Literal["custom-container"] = "custom-container"
    custom_container_config: ContainerConfig = ContainerConfig()
    gpu_config: GpuConfig | None = None
    memory_size: int | None = Field(None, gt=0, description="MB")
    cpu: float | None = Field(None, ge=_CPU_STEP, le=16, description="vCPU")
    disk_size: int | None = Field(None, gt=0, description="MB")
    instance_concurrency: int = Field(1, ge=1, le=100)
    timeout: float = Field(60.0, gt=0, description="seconds")
    instance_lifecycle_config: LifecycleConfig = LifecycleConfig()
    environment_variables: dict[str, str] = {}
    #: FC keys in `FC_PASSTHROUGH_KEYS`, as given (deploy sends them; the harness ignores them)
    passthrough: dict[str, Any] = {}
    harness: HarnessOptions = HarnessOptions()

    @model_validator(mode="before")
    @classmethod
    def _collect_passthrough(cls, data: Any) -> Any:
        if isinstance(data, dict) and FC_PASSTHROUGH_KEYS.intersection(data):
            data = dict(data)
            kept = dict(data.pop("passthrough", None) or {})
            for key in FC_PASSTHROUGH_KEYS.intersection(data):
                kept[key] = data.pop(key)
            data["passthrough"] = kept
        return data

    @field_validator("cpu")
    @classmethod
    def _check_cpu(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return value
        steps = value / _CPU_STEP
        if not math.isclose(steps, round(steps), abs_tol=1e-6):
            raise ValueError(f"cpu goes in steps of {_CPU_STEP} vCPU (e.g. "
                             f"{round(steps) * _CPU_STEP:.2f})")
        memory = info.data.get("memory_size")
        if memory:
            gb_per_cpu = memory / 1024 / value
            if not 1 - 1e-9 <= gb_per_cpu <= 4 + 1e-9:
                raise ValueError(f"FC needs vCPU : memory GB between 1:1 and 1:4; cpu {value:g} "
                                 f"with memorySize {memory} MB is 1:{gb_per_cpu:.2f}; use "
                                 f"memorySize {math.ceil(value * 1024)}-"
                                 f"{math.floor(value * 4096)} MB")
        return round(value, 2)

    @field_validator("function_name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("functionName must start with a letter or _ and contain only "
                             "letters, digits, _ and - (at most 128 characters)")
        return value

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _stringify_env(cls, value: Any) -> Any:
        # YAML turns `FOO: 1` into an int; FC environment values are strings.
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else _env_str(v) for k, v in value.items()}
        return value

    @property
    def name(self) -> str:
        return self.function_name

    @property
    def gpu_memory_mb(self) -> int:
        """GPU memory the instance reserves, 0 for a CPU function."""
        return self.gpu_config.gpu_memory_size if self.gpu_config else 0

    def to_fc(self) -> dict[str, Any]:
        """The FC 3.0 `CreateFunction` body (camelCase, harness keys dropped)."""
        body = self.model_dump(by_alias=True, exclude_none=True,
                               exclude={"harness", "passthrough"})
        return {**body, **self.passthrough}

    def to_doc(self) -> dict[str, Any]:
        """`to_fc()` plus the `harness` section: what `function_spec_from_dict` reads back."""
        return {**self.to_fc(), "harness": self.harness.model_dump(by_alias=True,
                                                                   exclude_none=True)}

    def __repr__(self) -> str:
        env = {k: (MASK if looks_secret(k) else v) for k, v in self.environment_variables.items()}
        return (f"FunctionSpec(function_name={self.function_name!r}, "
                f"instance_concurrency={self.instance_concurrency}, "
                f"gpu_memory_mb={self.gpu_memory_mb}, environment_variables={env!r})")

    __str__ = __repr__


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)




def masked_environment(spec: FunctionSpec) -> dict[str, str]:
    """The spec's environment with secret-looking values replaced by ``***`` (for results files)."""
    return {k: (MASK if looks_secret(k) else v) for k, v in spec.environment_variables.items()}


def _build(data: Any) -> FunctionSpec:
    if not isinstance(data, dict):
        raise SpecError("a function spec must be a YAML mapping with at least `functionName`")
    return FunctionSpec.model_validate(data)


def function_spec_from_doc(doc: LocatedDoc, *, prefix: tuple[Any, ...] = ()) -> FunctionSpec:
    """Validate a located (sub-)document as a function spec."""
    if not isinstance(doc.data, dict):
        raise SpecError("a function spec must be a mapping with at least `functionName`",
                        file=doc.file, line=doc.line_of(prefix) if prefix else 1,
                        path=".".join(map(str, prefix)) or None)
    spec = validate(doc, _build, prefix=prefix)
    return _resolve_sample_file(spec, doc, prefix)


def _resolve_sample_file(spec: FunctionSpec, doc: LocatedDoc,
                         prefix: tuple[Any, ...]) -> FunctionSpec:
    """Make `harness.sampleRequest.file` absolute, relative to the file the spec came from
    (a spec file, or the workload holding an inline spec), and check that it exists."""
    sample = spec.harness.sample_request
    if sample is None or sample.file is None or not Path(doc.file).is_file():
        return spec
    loc = (*prefix, "harness", "sampleRequest", "file")
    path = (Path(doc.file).resolve().parent / Path(sample.file).expanduser()).resolve()
    if not path.is_file():
        raise SpecError(f"sample request file {sample.file!r} not found (looked for {path}); "
                        "paths are relative to the folder of the file that holds the spec",
                        file=doc.file, line=doc.line_of(loc), path=_dotted(loc))
    sample = sample.model_copy(update={"file": str(path)})
    return spec.model_copy(update={"harness": spec.harness.model_copy(
        update={"sample_request": sample})})


def load_function_spec(path: str | Path) -> FunctionSpec:
    """Read and validate one function spec YAML file.

    Raises:
        SpecError: naming the file, line and key of the first problem.
    """
    return function_spec_from_doc(load_located(path))


def load_function_specs(paths: list[str | Path]) -> list[FunctionSpec]:
    """Load several spec files; function names must be unique."""
    specs: list[FunctionSpec] = []
    seen: dict[str, str] = {}
    for path in paths:
        spec = load_function_spec(path)
        if spec.name in seen:
            raise SpecError(f"function {spec.name!r} is already defined in {seen[spec.name]}",
                            file=str(path), path="functionName")
        seen[spec.name] = str(path)
        specs.append(spec)
    return specs


def function_spec_from_dict(data: dict[str, Any], *, source: str = "<request>") -> FunctionSpec:
    """Validate a spec that arrived as JSON (e.g. the harness's CreateFunction route)."""
    return validate(LocatedDoc(data=data, file=source), _build)


def updated_spec(spec: FunctionSpec, changes: dict[str, Any], *,
                 source: str = "UpdateFunction body") -> FunctionSpec:
    """FC's UpdateFunction: top-level keys in `changes` replace the spec's (a given
    `environmentVariables` replaces them all); `harness` keys replace one by one.

    Raises:
        SpecError: the result is not a valid spec, or `changes` renames the function.
    """
    if not isinstance(changes, dict):
        raise SpecError("the body must be a JSON object of the fields to change", file=source)
    name = changes.get("functionName", spec.name)
    if name != spec.name:
        raise SpecError(f"UpdateFunction cannot rename {spec.name!r} to {name!r}; create a new "
                        "function instead", file=source, path="functionName")
    doc = spec.to_doc()
    for key, value in changes.items():
        if key == "harness" and isinstance(value, dict):
            doc["harness"] = {**doc["harness"], **value}
        else:
            doc[key] = value
    return function_spec_from_dict(doc, source=source)


# ---- triggers and provision configs (CreateTrigger, PutProvisionConfig bodies) ------------
_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")


class HttpTriggerConfig(_Spec):
    """An HTTP trigger's `triggerConfig` (a JSON string on the wire, a mapping in s.yaml)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)

    auth_type: Literal["anonymous", "function"] = "anonymous"
    methods: list[str] = Field(default_factory=lambda: ["GET", "POST"], min_length=1)
    disable_url_internet: bool = Field(False, alias="disableURLInternet")

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        upper = [m.upper() for m in value]
        bad = [m for m in upper if m not in _METHODS]
        if bad:
            raise ValueError(f"unknown HTTP method {bad[0]!r}; use {', '.join(_METHODS)}")
        return list(dict.fromkeys(upper))


class TriggerSpec(_Spec):
    """A CreateTrigger body. The harness serves `triggerType: http` only."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)

    trigger_name: str
    trigger_type: Literal["http"]
    trigger_config: HttpTriggerConfig = HttpTriggerConfig()
    description: str = ""
    qualifier: str = "LATEST"
    invocation_role: str | None = None
    source_arn: str | None = None

    @field_validator("trigger_name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("triggerName must start with a letter or _ and contain only "
                             "letters, digits, _ and - (at most 128 characters)")
        return value

    @field_validator("trigger_config", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Any:
        if isinstance(value, str):  # FC's wire shape: the config is a JSON string
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError("triggerConfig must be JSON, e.g. "
                                 '{"authType": "anonymous", "methods": ["GET", "POST"]}') from None
        return value

    def config_json(self) -> str:
        """`triggerConfig` as FC returns it: a JSON string."""
        return json.dumps(self.trigger_config.model_dump(by_alias=True))


class ProvisionSpec(_Spec):
    """A PutProvisionConfig body: `defaultTarget` provisioned instances (the harness's
    `harness.minInstances`); the scaling policies are kept and echoed, not acted on."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)

    default_target: int = Field(ge=0, le=10_000)
    always_allocate_cpu: bool | None = Field(None, alias="alwaysAllocateCPU")
    always_allocate_gpu: bool | None = Field(None, alias="alwaysAllocateGPU")
    scheduled_actions: list[dict[str, Any]] | None = None
    target_tracking_policies: list[dict[str, Any]] | None = None


def trigger_from_dict(data: Any, *, source: str = "CreateTrigger body") -> TriggerSpec:
    """Validate a CreateTrigger body (`SpecError` naming the field)."""
    return validate(LocatedDoc(data=data, file=source), _model_builder(TriggerSpec))


def provision_from_dict(data: Any, *, source: str = "PutProvisionConfig body") -> ProvisionSpec:
    """Validate a PutProvisionConfig body (`SpecError` naming the field)."""
    return validate(LocatedDoc(data=data, file=source), _model_builder(ProvisionSpec))


def _model_builder(cls: type[BaseModel]) -> Any:
    def build(data: Any) -> Any:
        if not isinstance(data, dict):
            raise SpecError("the body must be a JSON object")
        return cls.model_validate(data)
    return build
