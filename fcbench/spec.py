"""Function specs: FC 3.0 `CreateFunction` fields in YAML, validated into frozen objects.

Key names: `FunctionSpec`, `HarnessOptions`, `PlatformOptions` (`harness.platform`: FC-sized
cold starts), `SampleRequest`, `load_function_spec`,
`function_spec_from_dict`, `updated_spec` (FC's UpdateFunction), `TriggerSpec` / `trigger_from_dict`
(CreateTrigger), `ProvisionSpec` / `provision_from_dict` (PutProvisionConfig, with its
`ScheduledAction` / `TargetTrackingPolicy`), `ConcurrencySpec` / `concurrency_from_dict`
(PutConcurrencyConfig), `AsyncInvokeConfigSpec` / `async_invoke_config_from_dict`
(PutAsyncInvokeConfig). FC 3.0's rules
(gpuMemorySize a multiple of 1024 MB, instanceConcurrency 1-100, cpu 0.05-16 in 0.05 steps at
1:1-1:4 vCPU : GB, health-check ranges, the published maximums of every duration and size, finite
numbers only, environment variable names and their 4 KB total) are checked here once, for YAML
files and API bodies alike. Past this module no code indexes a raw spec dict.

What a spec would run or copy, for the commands that send one: `host_code` (commands on the
harness's machine), `container_code` (commands inside the image), `env_refs` /
`resolve_env_refs` (``${env('NAME')}`` values, resolved by `fcbench deploy` only).
"""

from __future__ import annotations

import json
import logging
import math
import mimetypes
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      ValidationError, ValidationInfo, ValidatorFunctionWrapHandler,
                      WrapValidator, field_validator, model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic.alias_generators import to_camel

from ._model import Model
from ._yaml import LocatedDoc, _dotted, load_located, validate
from .distributions import Distribution, read_distribution
from .errors import SpecError
from .fc import (CPU_STEP, DEFAULT_GPU_TYPE, DEFAULT_IDLE_TIMEOUT_S,
                 DEFAULT_INITIALIZER_TIMEOUT_S, DEFAULT_INSTANCE_CONCURRENCY,
                 DEFAULT_MAX_INSTANCES, DEFAULT_PORT, DEFAULT_PRE_STOP_TIMEOUT_S,
                 DEFAULT_QUALIFIER, DEFAULT_QUEUE_SIZE, DEFAULT_QUEUE_TIMEOUT_S,
                 DEFAULT_START_TIMEOUT_S, DEFAULT_TIMEOUT_S, DISK_SIZES_MB, FUNCTION_NAME_MAX,
                 GPU_TYPES, HTTP_METHODS, MAX_CPU, MAX_ENV_BYTES, MAX_GPU_MEMORY_MB,
                 MAX_HARNESS_S, MAX_HOOK_TIMEOUT_S, MAX_IMAGE_MB_CPU, MAX_IMAGE_MB_GPU,
                 MAX_INSTANCE_CONCURRENCY, MAX_INSTANCES, MAX_MEMORY_MB, MAX_QUEUE_SIZE,
                 MAX_RESERVED_CONCURRENCY, MAX_TIMEOUT_S, MEMORY_STEP_MB, MIN_MEMORY_MB,
                 TRIGGER_NAME_MAX)
from .provision_policy import (FC_METRIC_TYPES, TRACKED_METRIC, duplicate_names,
                               parse_expression, parse_time, time_zone)
from .secrets import MASK, looks_secret
from .fc import (DEFAULT_ASYNC_EVENT_AGE_S, DEFAULT_ASYNC_RETRY_ATTEMPTS, MAX_ASYNC_EVENT_AGE_S,
                 MAX_ASYNC_RETRY_ATTEMPTS, MIN_ASYNC_EVENT_AGE_S)

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_PORT",
    "HOST_ENV_KEYS",
    "ConcurrencySpec",
    "ContainerConfig",
    "EnvRef",
    "FunctionSpec",
    "GpuConfig",
    "HarnessOptions",
    "HealthCheckConfig",
    "HttpTriggerConfig",
    "PlatformOptions",
    "ProvisionSpec",
    "SampleRequest",
    "ScheduledAction",
    "TargetTrackingPolicy",
    "TriggerSpec",
    "concurrency_from_dict",
    "container_code",
    "env_ref_text",
    "env_refs",
    "function_spec_from_dict",
    "host_code",
    "load_function_spec",
    "load_function_specs",
    "provision_from_dict",
    "resolve_env_refs",
    "trigger_from_dict",
    "updated_spec",
]

log = logging.getLogger(__name__)

# FC's limits and defaults live in `fcbench.fc`; imported above, and re-exported for the callers
# that read them from here.

# Matched with fullmatch: `$` also matches before a trailing newline, and "f\n" would then name
# a log file and break the invoke path. FC 3.0 (CreateFunctionInput / CreateTriggerInput in the
# SDK): letters, digits, _ and -, not starting with a digit or -.
_FUNCTION_NAME = re.compile(rf"[A-Za-z_][A-Za-z0-9_-]{{0,{FUNCTION_NAME_MAX - 1}}}")
_TRIGGER_NAME = re.compile(rf"[A-Za-z_][A-Za-z0-9_-]{{0,{TRIGGER_NAME_MAX - 1}}}")


def _checked_name(value: str, pattern: re.Pattern[str], key: str, most: int) -> str:
    """`value` when `pattern` matches all of it (fullmatch: a trailing newline is refused)."""
    if not pattern.fullmatch(value):
        raise ValueError(f"{key} must start with a letter or _ and contain only letters, "
                         f"digits, _ and - (at most {most} characters)")
    return value
#: FC's rule for environment variable names: "must start with a letter and can contain only
#: letters, digits, and underscores"; names starting FC_ are FC's own and reserved.
_ENV_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _at_most(limit: int, unit: str, why: str) -> WrapValidator:
    """A ceiling with a sentence for a message, checked before the value is parsed too: 1e308
    into an int field would otherwise say only that it cannot be parsed."""
    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        over = isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit
        out = value if over else handler(value)
        if over or (isinstance(out, (int, float)) and out > limit):
            raise ValueError(f"at most {limit}{unit} ({why}); lower it")
        return out
    return WrapValidator(check)


_TimeoutS = Annotated[float, _at_most(MAX_TIMEOUT_S, " s", "FC 3.0's longest execution, a day")]
_MemoryMb = Annotated[int, _at_most(MAX_MEMORY_MB, " MB", "FC's largest memorySize, 32 GB")]
_HookS = Annotated[float, _at_most(MAX_HOOK_TIMEOUT_S, " s", "10 minutes for one lifecycle "
                                   "hook")]
_HarnessS = Annotated[float, _at_most(MAX_HARNESS_S, " s", "a day")]
_Instances = Annotated[int, _at_most(MAX_INSTANCES, "", "FC's provision ceiling, "
                                     "PutProvisionConfig defaultTarget 0-10000")]
_QueueSize = Annotated[int, _at_most(MAX_QUEUE_SIZE, "", "requests waiting per function")]

#: CreateFunction keys FC knows and the harness does not act on (role, networking, logs...):
#: accepted and kept, so one spec deploys to FC unchanged; anything else is a typo.
FC_PASSTHROUGH_KEYS = frozenset({
    "code", "customDNS", "customRuntimeConfig", "disableInjectCredentials", "disableOndemand",
    "enableLongLiving", "handler", "idleTimeout", "instanceIsolationMode", "internetAccess",
    "juiceFsConfig", "layers", "logConfig", "microSandboxConfig", "nasConfig", "ossMountConfig",
    "polarFsConfig", "resourceGroupId", "role", "sessionAffinity", "sessionAffinityConfig",
    "tags", "tracingConfig", "vpcConfig"})


class _Spec(Model):
    # allow_inf_nan=False: FC takes finite numbers only, and `inf` passed every `gt=0` bound
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True,
        strict=False, allow_inf_nan=False,
    )


def _check_env_key(key: str) -> str:
    if key.startswith("FC_"):
        raise ValueError("names starting FC_ are FC's own (FC_FUNCTION_NAME, FC_INSTANCE_ID, "
                         "...), set on every instance; rename the variable")
    if not _ENV_KEY.fullmatch(key):
        fixed = re.sub(r"[^A-Za-z0-9_]", "_", key)
        fixed = fixed if fixed[:1].isalpha() else "V_" + fixed
        raise ValueError("an environment variable name starts with a letter and holds only "
                         f"letters, digits and _ (FC's rule); rename it, e.g. to {fixed}")
    return key


def _check_env_value(value: str) -> str:
    if "\x00" in value:
        raise ValueError("an environment variable value cannot hold a NUL character (no "
                         "process environment can); remove it")
    return value


_EnvKey = Annotated[str, AfterValidator(_check_env_key)]
_EnvValue = Annotated[str, AfterValidator(_check_env_value)]


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
    gpu_type: str = DEFAULT_GPU_TYPE

    @field_validator("gpu_memory_size")
    @classmethod
    def _whole_gb(cls, value: int) -> int:
        if value > MAX_GPU_MEMORY_MB:
            largest = max(GPU_TYPES.values(), key=lambda t: t.total_mb)
            raise ValueError(f"gpuMemorySize is more than FC's largest GPU ({largest.name}, "
                             f"{largest.total_mb} MB); lower it to {largest.total_mb} or less")
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
    timeout: _HookS = Field(DEFAULT_INITIALIZER_TIMEOUT_S, gt=0, description="seconds")
    command: list[str] | None = None


class LifecycleHook(_Spec):
    """`instanceLifecycleConfig.preStop`: FC sends ``GET /pre-stop`` to a custom container
    within `timeout` seconds before stopping it."""

    handler: str = ""
    timeout: _HookS = Field(DEFAULT_PRE_STOP_TIMEOUT_S, gt=0, description="seconds")
    command: list[str] | None = None


class LifecycleConfig(_Spec):
    """`instanceLifecycleConfig`: initializer and pre-stop hooks."""

    initializer: Initializer | None = None
    pre_stop: LifecycleHook | None = None


class QueueOptions(_Spec):
    """Bounded FIFO queue for requests that find no slot and no room to start an instance."""

    size: _QueueSize = Field(DEFAULT_QUEUE_SIZE, ge=0)
    timeout: _HarnessS = Field(DEFAULT_QUEUE_TIMEOUT_S, gt=0, description="seconds")


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


# ---- provision policies (PutProvisionConfig scheduledActions / targetTrackingPolicies) ------
class _Policy(_Spec):
    """What both kinds of provision policy have: a name and a window in a time zone."""

    name: str = Field(min_length=1)
    start_time: str | None = None
    end_time: str | None = None
    time_zone: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        time_zone(value)
        return value

    @model_validator(mode="after")
    def _window(self) -> _Policy:
        tz = time_zone(self.time_zone)
        times = {}
        for key, value in (("startTime", self.start_time), ("endTime", self.end_time)):
            try:
                times[key] = parse_time(value, tz)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        start, end = times["startTime"], times["endTime"]
        if start is not None and end is not None and end <= start:
            raise ValueError(f"endTime {self.end_time} is not after startTime {self.start_time}")
        return self


class ScheduledAction(_Policy):
    """One of a provision config's `scheduledActions` (FC's ScheduledAction): at each time of
    `scheduleExpression` (``cron(S M H DoM Mon DoW)``, seconds first, or ``at(TIME)``) inside
    [startTime, endTime) the provisioned target becomes `target` (`fcbench.provision_policy`)."""

    target: _Instances = Field(ge=0)
    schedule_expression: str

    @field_validator("schedule_expression")
    @classmethod
    def _expression(cls, value: str) -> str:
        parse_expression(value)
        return value


class TargetTrackingPolicy(_Policy):
    """One of a provision config's `targetTrackingPolicies` (FC's TargetTrackingPolicy): inside
    [startTime, endTime) the provisioned target follows ProvisionedConcurrencyUtilization toward
    `metricTarget`, within [minCapacity, maxCapacity] (`fcbench.provision_policy`)."""

    metric_type: str
    metric_target: float = Field(gt=0, le=1, description="the utilisation to keep, 0-1")
    min_capacity: _Instances = Field(ge=0)
    max_capacity: _Instances = Field(ge=0)

    @field_validator("metric_type")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in FC_METRIC_TYPES:
            raise ValueError(f"unknown metricType {value!r}; FC takes "
                             f"{', '.join(FC_METRIC_TYPES)}")
        if value != TRACKED_METRIC:
            raise ValueError(f"the harness measures {TRACKED_METRIC} only (no CPU or GPU "
                             f"utilisation of its instances); use it, or drop this policy")
        return value

    @model_validator(mode="after")
    def _capacities(self) -> TargetTrackingPolicy:
        if self.min_capacity > self.max_capacity:
            raise ValueError(f"minCapacity {self.min_capacity} is more than maxCapacity "
                             f"{self.max_capacity}")
        return self


def _unique_names(items: list[Any] | None, key: str) -> None:
    twice = duplicate_names(items or [])
    if twice:
        raise ValueError(f"{key}: the name {twice[0]!r} is used twice; policies are known by "
                         "their names")


#: The longest a platform phase of a start may be (every parameter of `gpuPrepare` and
#: `extraStart`, and `imageSizeMB / imagePullMBps`): ten minutes is no FC cold start.
MAX_PLATFORM_PHASE_S = 600.0
#: The fastest image pull `imagePullMBps` may say (MB/s): far above any registry's.
MAX_PULL_MBPS = 100_000.0


def _distribution_text(value: Any) -> Any:
    """A number (seconds) or distribution text, kept as text: what the file said round-trips."""
    if isinstance(value, bool):
        raise ValueError("a duration or distribution, e.g. 4s or normal:6s:1s, not true/false")
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return value


def _check_phase(value: str) -> str:
    dist = read_distribution(value, unit="s")
    if any(a < 0 for a in dist.args_ms):
        raise ValueError("a start phase takes no negative time; use numbers >= 0")
    if dist.kind == "uniform" and dist.args_ms[0] > dist.args_ms[1]:
        raise ValueError("uniform:LOW:HIGH needs LOW <= HIGH; swap them")
    if max(dist.args_ms) > MAX_PLATFORM_PHASE_S * 1000.0:
        raise ValueError(f"at most {MAX_PLATFORM_PHASE_S:g} s per parameter (no FC "
                         "cold start lasts ten minutes); lower it")
    return value


_PhaseText = Annotated[str, BeforeValidator(_distribution_text), AfterValidator(_check_phase)]


class PlatformOptions(_Spec):
    """`harness.platform`: the platform's own phases of every start, which the local machine
    does not have (FC prepares a GPU, pulls the image from its registry): the harness waits them
    out during each start, before the runtime starts the instance, and the simulator adds them
    to its start-up times (`fcbench.harness.platform_phases`).

    `gpuPrepare` and `extraStart` are durations or distributions (``4s``, ``normal:6s:1s``,
    ``uniform:2s:6s``, ``exp:3s``; a bare number is seconds); the image pull lasts
    `imageSizeMB` / `imagePullMBps`. Draws are seeded by `seed` and the instance id."""

    gpu_prepare: _PhaseText | None = Field(None, description="FC preparing the instance's GPU")
    image_size_mb: float | None = Field(None, alias="imageSizeMB", gt=0,
                                        description="MB of the image FC pulls (uncompressed)")
    image_pull_mbps: float | None = Field(None, alias="imagePullMBps", gt=0, le=MAX_PULL_MBPS,
                                          description="MB/s FC pulls it at")
    extra_start: _PhaseText | None = Field(None, description="the rest of FC's start")
    seed: int = Field(0, ge=0, le=2**63 - 1)

    @model_validator(mode="after")
    def _pull_pair(self) -> PlatformOptions:
        if (self.image_size_mb is None) != (self.image_pull_mbps is None):
            given, missing = (("imageSizeMB", "imagePullMBps") if self.image_pull_mbps is None
                              else ("imagePullMBps", "imageSizeMB"))
            raise ValueError(f"{given} needs {missing} too: the platform's image pull lasts "
                             "imageSizeMB / imagePullMBps (give both, or neither)")
        pull = self.image_pull_ms
        if pull is not None and pull > MAX_PLATFORM_PHASE_S * 1000.0:
            raise ValueError(f"imageSizeMB / imagePullMBps is {pull / 1000.0:g} s, more than "
                             f"{MAX_PLATFORM_PHASE_S:g} s; raise imagePullMBps (FC's image "
                             "acceleration loads GB images in seconds)")
        return self

    @property
    def gpu_prepare_dist(self) -> Distribution | None:
        return None if self.gpu_prepare is None else read_distribution(self.gpu_prepare, unit="s")

    @property
    def extra_start_dist(self) -> Distribution | None:
        return None if self.extra_start is None else read_distribution(self.extra_start, unit="s")

    @property
    def image_pull_ms(self) -> float | None:
        """How long the platform's image pull takes (ms), None when the section names none."""
        if self.image_size_mb is None or self.image_pull_mbps is None:
            return None
        return self.image_size_mb / self.image_pull_mbps * 1000.0


class HarnessOptions(_Spec):
    """Harness-only keys (ignored by FC): how the local platform runs this function."""

    runtime: Literal["process", "docker"] = "process"
    idle_timeout: _HarnessS = Field(DEFAULT_IDLE_TIMEOUT_S, gt=0, description="seconds")
    max_instances: _Instances = Field(DEFAULT_MAX_INSTANCES, ge=1)
    min_instances: _Instances = Field(0, ge=0, description="provisioned instances: started at "
                                      "once and never reclaimed (FC's provision config "
                                      "defaultTarget)")
    reserved_concurrency: int | None = Field(
        None, ge=0, le=MAX_RESERVED_CONCURRENCY,
        description="FC's PutConcurrencyConfig reservedConcurrency: requests in flight or "
        "waiting beyond it are refused at once with 429 ResourceExhausted; 0 disables the "
        "function")
    scheduled_actions: list[ScheduledAction] | None = Field(
        None, description="FC's provision config scheduledActions: change the provisioned "
        "target (minInstances is its default) at cron or at() times")
    target_tracking_policies: list[TargetTrackingPolicy] | None = Field(
        None, description="FC's provision config targetTrackingPolicies: the provisioned "
        "target follows ProvisionedConcurrencyUtilization")
    queue: QueueOptions = QueueOptions()
    start_timeout: _HarnessS = Field(DEFAULT_START_TIMEOUT_S, gt=0, description="seconds")
    command: list[str] | None = Field(
        None, description="process runtime: argv to run instead of `python -m fcbench.server`")
    sample_request: SampleRequest | None = Field(
        None, description="the request `coldstart profile`/`sweep` send when given none")
    platform: PlatformOptions | None = Field(
        None, description="FC's own start phases, waited out in every start (FC-sized starts)")

    @model_validator(mode="after")
    def _min_within_max(self) -> HarnessOptions:
        if self.min_instances > self.max_instances:
            raise ValueError(f"minInstances {self.min_instances} is more than maxInstances "
                             f"{self.max_instances}; lower it or raise maxInstances")
        _unique_names(self.scheduled_actions, "scheduledActions")
        _unique_names(self.target_tracking_policies, "targetTrackingPolicies")
        return self


class FunctionSpec(_Spec):
    """One function, as FC 3.0 `CreateFunction` names it, plus a `harness:` section."""

    function_name: str
    description: str = ""
    runtime: Literal["custom-container"] = "custom-container"
    custom_container_config: ContainerConfig = ContainerConfig()
    gpu_config: GpuConfig | None = None
    memory_size: _MemoryMb | None = Field(None, description="MB, 128-32768 in steps of 64")
    cpu: float | None = Field(None, ge=CPU_STEP, le=MAX_CPU, description="vCPU")
    disk_size: int | None = Field(None, description="MB: 512 or 10240")
    instance_concurrency: int = Field(DEFAULT_INSTANCE_CONCURRENCY, ge=1,
                                      le=MAX_INSTANCE_CONCURRENCY)
    # FC's minimum is 1 s; the harness keeps sub-second timeouts (its tests time out in 0.5 s)
    timeout: _TimeoutS = Field(DEFAULT_TIMEOUT_S, gt=0, description="seconds")
    instance_lifecycle_config: LifecycleConfig = LifecycleConfig()
    environment_variables: dict[_EnvKey, _EnvValue] = {}
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

    @model_validator(mode="after")
    def _platform_fits(self) -> FunctionSpec:
        platform = self.harness.platform
        if platform is None:
            return self
        where = ("harness", "platform")
        if platform.gpu_prepare is not None and self.gpu_config is None:
            raise _located_error(where + ("gpuPrepare",), platform.gpu_prepare,
                                 "gpuPrepare is FC preparing an instance's GPU, and this "
                                 "function has no gpuConfig; add one or drop gpuPrepare")
        most = MAX_IMAGE_MB_GPU if self.gpu_config is not None else MAX_IMAGE_MB_CPU
        if platform.image_size_mb is not None and platform.image_size_mb > most:
            kind = "GPU" if self.gpu_config is not None else "CPU"
            raise _located_error(where + ("imageSizeMB",), platform.image_size_mb,
                                 f"at most {most} MB: FC takes images up to {most // 1024} GB "
                                 f"uncompressed for {kind} instances; lower it")
        return self

    @field_validator("memory_size")
    @classmethod
    def _memory_step(cls, value: int | None) -> int | None:
        if value is not None and value < MIN_MEMORY_MB:
            raise ValueError(f"memorySize is at least {MIN_MEMORY_MB} MB on FC; raise it")
        if value is not None and value % MEMORY_STEP_MB:
            up = math.ceil(value / MEMORY_STEP_MB) * MEMORY_STEP_MB
            raise ValueError(f"memorySize goes in steps of {MEMORY_STEP_MB} MB on FC; use {up} "
                             "(or another multiple of 64)")
        return value

    @field_validator("disk_size")
    @classmethod
    def _disk_choice(cls, value: int | None) -> int | None:
        if value is not None and value not in DISK_SIZES_MB:
            raise ValueError("FC offers diskSize 512 or 10240 (MB); use one of the two")
        return value

    @field_validator("cpu")
    @classmethod
    def _check_cpu(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return value
        steps = value / CPU_STEP
        if not math.isclose(steps, round(steps), abs_tol=1e-6):
            raise ValueError(f"cpu goes in steps of {CPU_STEP} vCPU (e.g. "
                             f"{round(steps) * CPU_STEP:.2f})")
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
        return _checked_name(value, _FUNCTION_NAME, "functionName", FUNCTION_NAME_MAX)

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _stringify_env(cls, value: Any) -> Any:
        # YAML turns `FOO: 1` into an int; FC environment values are strings.
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else _env_str(v) for k, v in value.items()}
        return value

    @field_validator("environment_variables")
    @classmethod
    def _env_size(cls, value: dict[str, str]) -> dict[str, str]:
        size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
        if size > MAX_ENV_BYTES:
            raise ValueError(f"the environment variables total {size} bytes (names and values), "
                             f"more than FC's {MAX_ENV_BYTES} (4 KB); shorten or drop some, or "
                             "move large values into the image or a file")
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


def _located_error(loc: tuple[str, ...], value: Any, message: str) -> ValidationError:
    """A validation error at `loc` (keys as the file writes them), for a check across sections:
    the error then names the key and its line, as a field's own check would."""
    return ValidationError.from_exception_data("FunctionSpec", [InitErrorDetails(
        type=PydanticCustomError("value_error", message), loc=loc, input=value)])


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


def _refuse_non_finite(doc: LocatedDoc, prefix: tuple[Any, ...] = ()) -> None:
    """Refuse ``.inf`` / ``Infinity`` / ``NaN`` anywhere in a spec, naming its key: the typed
    fields refuse them too (``allow_inf_nan=False``), but `sampleRequest.json` and the FC keys
    passed through are free-form, and json.dumps would send them as invalid JSON."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(doc.data, tuple(prefix))]
    seen: set[int] = set()  # YAML aliases share one value: walk it once
    while stack:
        value, loc = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"not a finite number (got {value!r}); FC takes finite numbers "
                            "only: put a number within the field's range here",
                            file=doc.file, line=doc.line_of(loc), path=_dotted(loc) or None)
        if isinstance(value, (dict, list)):
            if id(value) in seen:
                continue
            seen.add(id(value))
            items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
            for key, item in reversed(items):  # reversed: the first in the file is met first
                # environment values are text (`X: .inf` is the string "inf"), not numbers
                if not (loc == tuple(prefix) and key == "environmentVariables"):
                    stack.append((item, loc + (key,)))


def function_spec_from_doc(doc: LocatedDoc, *, prefix: tuple[Any, ...] = ()) -> FunctionSpec:
    """Validate a located (sub-)document as a function spec."""
    if not isinstance(doc.data, dict):
        raise SpecError("a function spec must be a mapping with at least `functionName`",
                        file=doc.file, line=doc.line_of(prefix) if prefix else 1,
                        path=".".join(map(str, prefix)) or None)
    _refuse_non_finite(doc, prefix)
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
    doc = LocatedDoc(data=data, file=source)
    _refuse_non_finite(doc)
    return validate(doc, _build)


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


# ---- what a spec runs, and what it copies from the deploying shell ------------------------
#: Environment variables that change how a process on the host loads or runs code: the dynamic
#: loader's (LD_*), Python's start-up hooks and search paths, and the files sh / bash source on
#: start. In a process-runtime instance they act on the harness's machine.
HOST_ENV_KEYS: tuple[str, ...] = (
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME",
    "PYTHONUSERBASE", "PYTHONINSPECT", "BASH_ENV", "ENV")


def host_code(spec: FunctionSpec) -> list[str]:
    """What `spec` would run on the harness's own machine, one readable line each
    (``harness.command: python3 app.py``): `harness.command`, and for the process runtime the
    `HOST_ENV_KEYS` among its environment variables. Empty: nothing but fcbench's own server."""
    lines = []
    if spec.harness.command:
        lines.append(f"harness.command: {shlex.join(spec.harness.command)}")
    if spec.harness.runtime == "process":
        lines += [f"environmentVariables.{k}: {v}" for k, v in spec.environment_variables.items()
                  if k in HOST_ENV_KEYS]
    return lines


def container_code(spec: FunctionSpec) -> list[str]:
    """Commands `spec` runs inside its container image (FC's own contract: they run where the
    image runs, not on the deploying machine), one readable line each."""
    cc = spec.custom_container_config
    life = spec.instance_lifecycle_config
    found = [("customContainerConfig.entrypoint", cc.entrypoint),
             ("customContainerConfig.command", cc.command),
             ("instanceLifecycleConfig.initializer.command",
              life.initializer.command if life.initializer else None),
             ("instanceLifecycleConfig.preStop.command",
              life.pre_stop.command if life.pre_stop else None)]
    return [f"{key}: {shlex.join(argv)}" for key, argv in found if argv]


# `${env('NAME')}`, `${env("NAME")}` and `${env.NAME}`, as Serverless Devs writes them.
_ENV_REF = re.compile(r"""\$\{\s*env(?:\(\s*(['"])([^'"]+)\1\s*\)|\.([^\s}]+))\s*\}""")


def env_ref_text(name: str) -> str:
    """The one spelling fcbench writes a reference in: ``${env('NAME')}``."""
    return f"${{env('{name}')}}"


@dataclass(frozen=True)
class EnvRef:
    """A ``${env('NAME')}`` reference in a spec: the key path holding it and the variable."""

    path: str
    name: str

    @property
    def secret(self) -> bool:
        """The variable or the key looks like a secret (ALIBABA_CLOUD_* credentials count)."""
        return (looks_secret(self.name) or self.name.startswith("ALIBABA_CLOUD_")
                or looks_secret(self.path.rsplit(".", 1)[-1]))

    def describe(self) -> str:
        """``environmentVariables.X: ${env('NAME')}`` (never the value)."""
        return f"{self.path}: {env_ref_text(self.name)}"


def _strings(value: Any, loc: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        return [(loc, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _strings(v, loc + (k,))]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _strings(v, loc + (i,))]
    return []


def env_refs(spec: FunctionSpec) -> list[EnvRef]:
    """Every ``${env(...)}`` reference in `spec`, in document order."""
    return [EnvRef(_dotted(loc), m.group(2) or m.group(3))
            for loc, text in _strings(spec.to_doc(), ())
            for m in _ENV_REF.finditer(text)]


def resolve_env_refs(spec: FunctionSpec, environ: Mapping[str, str]
                     ) -> tuple[FunctionSpec, list[str]]:
    """`spec` with every ``${env('NAME')}`` replaced by ``environ[NAME]``, validated again (the
    4 KB environment limit counts the values), and the variable names used. Only `fcbench
    deploy` calls this, in memory: files, the harness and `fcbench run` keep the references.

    Raises:
        SpecError: naming the key whose variable is not set, or the resolved spec's problem
            (with each resolved value replaced by its reference, so no secret is echoed).
    """
    if not env_refs(spec):
        return spec, []
    names: list[str] = []
    values: dict[str, str] = {}

    def sub(loc: tuple[Any, ...], text: str) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(2) or m.group(3)
            if name not in environ:
                raise SpecError(f"{env_ref_text(name)}: environment variable {name} is not set; "
                                "export it before `fcbench deploy`, or put the value itself "
                                "there", path=_dotted(loc) or None)
            if name not in names:
                names.append(name)
            values[name] = environ[name]
            return environ[name]
        return _ENV_REF.sub(one, text)

    def walk(value: Any, loc: tuple[Any, ...]) -> Any:
        if isinstance(value, str):
            return sub(loc, value)
        if isinstance(value, dict):
            return {k: walk(v, loc + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, loc + (i,)) for i, v in enumerate(value)]
        return value

    doc = walk(spec.to_doc(), ())
    try:
        return function_spec_from_dict(doc, source="<resolved>"), names
    except SpecError as exc:
        message = exc.message
        for name, value in sorted(values.items(), key=lambda kv: -len(kv[1])):
            if len(value) >= 4:  # shorter ones would garble the message, and hide little
                message = message.replace(value, env_ref_text(name))
                message = message.replace(repr(value)[1:-1], env_ref_text(name))
        raise SpecError(message + " (after resolving ${env(...)} references)",
                        path=exc.path) from None


# ---- triggers and provision configs (CreateTrigger, PutProvisionConfig bodies) ------------
_METHODS = HTTP_METHODS


class HttpTriggerConfig(_Spec):
    """An HTTP trigger's `triggerConfig` (a JSON string on the wire, a mapping in s.yaml)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True, allow_inf_nan=False)

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
                              frozen=True, allow_inf_nan=False)

    trigger_name: str
    trigger_type: Literal["http"]
    trigger_config: HttpTriggerConfig = HttpTriggerConfig()
    description: str = ""
    qualifier: str = DEFAULT_QUALIFIER
    invocation_role: str | None = None
    source_arn: str | None = None

    @field_validator("trigger_name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _checked_name(value, _TRIGGER_NAME, "triggerName", TRIGGER_NAME_MAX)

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
    `harness.minInstances`) and the policies that change that target over time
    (`harness.scheduledActions`, `harness.targetTrackingPolicies`); `alwaysAllocateCPU/GPU`
    are kept and echoed (the harness never freezes an idle instance)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True, allow_inf_nan=False)

    default_target: int = Field(ge=0, le=MAX_INSTANCES)
    always_allocate_cpu: bool | None = Field(None, alias="alwaysAllocateCPU")
    always_allocate_gpu: bool | None = Field(None, alias="alwaysAllocateGPU")
    scheduled_actions: list[ScheduledAction] | None = None
    target_tracking_policies: list[TargetTrackingPolicy] | None = None

    @model_validator(mode="before")
    @classmethod
    def _old_target(cls, data: Any) -> Any:
        # `target` is the field defaultTarget replaced; an old caller may send only it
        if isinstance(data, dict) and "defaultTarget" not in data and "default_target" not in \
                data and "target" in data:
            return {**data, "defaultTarget": data["target"]}
        return data

    @model_validator(mode="after")
    def _names(self) -> ProvisionSpec:
        _unique_names(self.scheduled_actions, "scheduledActions")
        _unique_names(self.target_tracking_policies, "targetTrackingPolicies")
        return self

    def harness_keys(self) -> dict[str, Any]:
        """The `harness:` keys this config sets (PutProvisionConfig's effect on the spec)."""
        dump = self.model_dump(by_alias=True, exclude_none=True)
        return {"minInstances": self.default_target,
                "scheduledActions": dump.get("scheduledActions") or None,
                "targetTrackingPolicies": dump.get("targetTrackingPolicies") or None}


class ConcurrencySpec(_Spec):
    """A PutConcurrencyConfig body (FC's PutConcurrencyInput): `reservedConcurrency`, the
    harness's `harness.reservedConcurrency`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True, allow_inf_nan=False)

    reserved_concurrency: int = Field(ge=0, le=MAX_RESERVED_CONCURRENCY)


# ---- the async invoke config (PutAsyncInvokeConfig body) ----------------------------------
__all__ += ["AsyncInvokeConfigSpec", "async_invoke_config_from_dict"]


class AsyncDestination(_Spec):
    """One `destinationConfig` target: an ARN (MNS queue or topic, a function, an EventBridge
    bus...). Accepted and echoed; the harness sends nothing there."""

    destination: str = Field(min_length=1)


class AsyncDestinationConfig(_Spec):
    """`destinationConfig`: where FC reports an async invocation's result."""

    on_success: AsyncDestination | None = None
    on_failure: AsyncDestination | None = None


class AsyncInvokeConfigSpec(_Spec):
    """A PutAsyncInvokeConfig body (FC 3.0 `PutAsyncInvokeConfigInput`), FC's bounds and
    defaults: `maxAsyncEventAgeInSeconds` 1-604800 (86400), `maxAsyncRetryAttempts` 0-8 (3);
    `asyncTask` turns every async invocation into a task (GetAsyncTask / ListAsyncTasks /
    StopAsyncTask see it); `destinationConfig` is kept and echoed, not acted on."""

    async_task: bool = False
    destination_config: AsyncDestinationConfig | None = None
    max_async_event_age_in_seconds: int = Field(DEFAULT_ASYNC_EVENT_AGE_S,
                                                ge=MIN_ASYNC_EVENT_AGE_S,
                                                le=MAX_ASYNC_EVENT_AGE_S)
    max_async_retry_attempts: int = Field(DEFAULT_ASYNC_RETRY_ATTEMPTS, ge=0,
                                          le=MAX_ASYNC_RETRY_ATTEMPTS)


def async_invoke_config_from_dict(data: Any, *, source: str = "PutAsyncInvokeConfig body"
                                  ) -> AsyncInvokeConfigSpec:
    """Validate a PutAsyncInvokeConfig body (`SpecError` naming the field)."""
    return validate(LocatedDoc(data=data, file=source), _model_builder(AsyncInvokeConfigSpec))


def trigger_from_dict(data: Any, *, source: str = "CreateTrigger body") -> TriggerSpec:
    """Validate a CreateTrigger body (`SpecError` naming the field)."""
    return validate(LocatedDoc(data=data, file=source), _model_builder(TriggerSpec))


def provision_from_dict(data: Any, *, source: str = "PutProvisionConfig body") -> ProvisionSpec:
    """Validate a PutProvisionConfig body (`SpecError` naming the field)."""
    return validate(LocatedDoc(data=data, file=source), _model_builder(ProvisionSpec))


def concurrency_from_dict(data: Any, *, source: str = "PutConcurrencyConfig body"
                          ) -> ConcurrencySpec:
    """Validate a PutConcurrencyConfig body (`SpecError` naming the field)."""
    return validate(LocatedDoc(data=data, file=source), _model_builder(ConcurrencySpec))


def _model_builder(cls: type[BaseModel]) -> Any:
    def build(data: Any) -> Any:
        if not isinstance(data, dict):
            raise SpecError("the body must be a JSON object")
        return cls.model_validate(data)
    return build
