"""Function specs: FC 3.0 `CreateFunction` fields in YAML, validated into frozen objects.

Key names: `FunctionSpec`, `HarnessOptions`, `load_function_spec`, `function_spec_from_dict`.
Past this module no code indexes a raw spec dict.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from ._yaml import LocatedDoc, load_located, validate
from .errors import SpecError

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_PORT",
    "ContainerConfig",
    "FunctionSpec",
    "GpuConfig",
    "HarnessOptions",
    "function_spec_from_dict",
    "load_function_spec",
    "load_function_specs",
]

DEFAULT_PORT = 9000
DEFAULT_IDLE_TIMEOUT_S = 300.0  # FC reclaims idle instances after "usually 3-5 min"
DEFAULT_MAX_INSTANCES = 10
DEFAULT_QUEUE_SIZE = 100
DEFAULT_QUEUE_TIMEOUT_S = 60.0
DEFAULT_START_TIMEOUT_S = 120.0

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")


class _Spec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True,
        strict=False,
    )


class ContainerConfig(_Spec):
    """`customContainerConfig`: what runs inside an instance."""

    image: str | None = None
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    command: list[str] | None = None
    entrypoint: list[str] | None = None


class GpuConfig(_Spec):
    """`gpuConfig`: the GPU memory an instance reserves (MB) and the GPU family."""

    gpu_memory_size: int = Field(gt=0, description="MB")
    gpu_type: str = "fc.gpu.tesla.1"


class Initializer(_Spec):
    handler: str = "initialize"
    timeout: float = Field(60.0, gt=0)


class LifecycleHook(_Spec):
    handler: str = ""
    timeout: float = Field(10.0, gt=0)


class LifecycleConfig(_Spec):
    """`instanceLifecycleConfig`: initializer and pre-stop hooks."""

    initializer: Initializer | None = None
    pre_stop: LifecycleHook | None = None


class QueueOptions(_Spec):
    """Bounded FIFO queue for requests that find no slot and no room to start an instance."""

    size: int = Field(DEFAULT_QUEUE_SIZE, ge=0)
    timeout: float = Field(DEFAULT_QUEUE_TIMEOUT_S, gt=0, description="seconds")


class HarnessOptions(_Spec):
    """Harness-only keys (ignored by FC): how the local platform runs this function."""

    runtime: Literal["process", "docker"] = "process"
    idle_timeout: float = Field(DEFAULT_IDLE_TIMEOUT_S, gt=0, description="seconds")
    max_instances: int = Field(DEFAULT_MAX_INSTANCES, ge=1)
    queue: QueueOptions = QueueOptions()
    start_timeout: float = Field(DEFAULT_START_TIMEOUT_S, gt=0, description="seconds")
    command: list[str] | None = Field(
        None, description="process runtime: argv to run instead of `python -m fcbench.server`")


class FunctionSpec(_Spec):
    """One function, as FC 3.0 `CreateFunction` names it, plus a `harness:` section."""

    function_name: str
    description: str = ""
    runtime: Literal["custom-container"] = "custom-container"
    custom_container_config: ContainerConfig = ContainerConfig()
    gpu_config: GpuConfig | None = None
    memory_size: int | None = Field(None, gt=0, description="MB")
    cpu: float | None = Field(None, gt=0)
    disk_size: int | None = Field(None, gt=0, description="MB")
    instance_concurrency: int = Field(1, ge=1, le=200)
    timeout: float = Field(60.0, gt=0, description="seconds")
    instance_lifecycle_config: LifecycleConfig = LifecycleConfig()
    environment_variables: dict[str, str] = {}
    harness: HarnessOptions = HarnessOptions()

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
        return self.model_dump(by_alias=True, exclude_none=True, exclude={"harness"})

    def __repr__(self) -> str:
        env = {k: ("***" if _looks_secret(k) else v) for k, v in self.environment_variables.items()}
        return (f"FunctionSpec(function_name={self.function_name!r}, "
                f"instance_concurrency={self.instance_concurrency}, "
                f"gpu_memory_mb={self.gpu_memory_mb}, environment_variables={env!r})")

    __str__ = __repr__


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_SECRET = re.compile(r"(SECRET|TOKEN|PASSWORD|ACCESS_?KEY|CREDENTIAL)", re.I)


def _looks_secret(key: str) -> bool:
    return bool(_SECRET.search(key))


def masked_environment(spec: FunctionSpec) -> dict[str, str]:
    """The spec's environment with secret-looking values replaced by ``***`` (for results files)."""
    return {k: ("***" if _looks_secret(k) else v) for k, v in spec.environment_variables.items()}


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
    return validate(doc, _build, prefix=prefix)


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
