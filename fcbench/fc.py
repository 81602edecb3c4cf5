"""Alibaba Cloud Function Compute's own facts, kept once: GPU types, limits, defaults.

Key names: `GpuType` / `GPU_TYPES` / `DEFAULT_GPU_TYPE` / `gpu_price_family` (FC 3.0's
`gpuConfig.gpuType` values: card memory, class, the price family CU tables bill them by),
`V1_INSTANCE_TYPES` (Serverless Devs 1.x `instanceType` -> FC 3.0 gpuType), the published limits
of a function and its API (`MAX_TIMEOUT_S`, `MIN_MEMORY_MB` ... `MAX_ENV_BYTES`,
`MAX_SYNC_PAYLOAD_BYTES`, list page sizes), HTTP triggers' methods and auth types, and the
defaults a spec without a key gets (`DEFAULT_*`). `spec.py`, the harness, the cost model and the deploy code read
them from here. A leaf module: it imports nothing from fcbench, so anything may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "CPU_STEP", "DEFAULT_GPU_TYPE", "DEFAULT_IDLE_TIMEOUT_S", "DEFAULT_INITIALIZER_TIMEOUT_S",
    "DEFAULT_INSTANCE_CONCURRENCY", "DEFAULT_MAX_INSTANCES", "DEFAULT_PORT",
    "DEFAULT_PRE_STOP_TIMEOUT_S", "DEFAULT_QUALIFIER", "DEFAULT_QUEUE_SIZE",
    "DEFAULT_QUEUE_TIMEOUT_S", "DEFAULT_START_TIMEOUT_S", "DEFAULT_TIMEOUT_S", "DISK_SIZES_MB",
    "FUNCTION_NAME_MAX", "GPU_TYPES", "GpuType", "HTTP_METHODS", "LIST_PAGE_SIZE", "MAX_CPU",
    "MAX_ENV_BYTES", "MAX_GPU_MEMORY_MB", "MAX_HARNESS_S", "MAX_HOOK_TIMEOUT_S",
    "MAX_IMAGE_MB_CPU", "MAX_IMAGE_MB_GPU",
    "MAX_INSTANCES", "MAX_INSTANCE_CONCURRENCY", "MAX_LIST_LIMIT", "MAX_MEMORY_MB",
    "MAX_QUEUE_SIZE", "MAX_RESERVED_CONCURRENCY", "MAX_SYNC_PAYLOAD_BYTES", "MAX_TIMEOUT_S", "MEMORY_STEP_MB",
    "MIN_MEMORY_MB", "PRICE_FAMILIES", "PriceFamily", "TRIGGER_AUTH_TYPES", "TRIGGER_NAME_MAX",
    "V1_INSTANCE_TYPES", "gpu_price_family",
]

#: How CU price tables group GPU types ("tesla" prices, "ada" prices).
PriceFamily = Literal["tesla", "ada"]
PRICE_FAMILIES: tuple[PriceFamily, ...] = get_args(PriceFamily)


@dataclass(frozen=True)
class GpuType:
    """One FC `gpuConfig.gpuType`: the card's memory, the class of GPU it is, and the price
    family CU tables bill it under."""

    name: str
    total_mb: int
    family: str  # e.g. "T4 class"
    price_family: PriceFamily = "tesla"


# ---- GPU types ------------------------------------------------------------------------------
#: FC 3.0 GPU types (Function Compute documentation, "GPU-accelerated instances").
GPU_TYPES: dict[str, GpuType] = {t.name: t for t in (
    GpuType("fc.gpu.tesla.1", 16 * 1024, "T4 class", "tesla"),
    GpuType("fc.gpu.ampere.1", 24 * 1024, "A10 class", "tesla"),
    GpuType("fc.gpu.ada.1", 48 * 1024, "Ada class", "ada"),
)}
#: What a spec without `gpuConfig.gpuType` is taken to ask for (FC's own default).
DEFAULT_GPU_TYPE = "fc.gpu.tesla.1"
#: `gpuConfig.gpuMemorySize`: at most the largest card of FC's GPU types (fc.gpu.ada.1, 48 GB).
MAX_GPU_MEMORY_MB = max(t.total_mb for t in GPU_TYPES.values())

#: Serverless Devs 1.x `instanceType` g1 was the Tesla-series GPU instance (FC 3.0 gpuType).
V1_INSTANCE_TYPES: dict[str, str] = {"g1": "fc.gpu.tesla.1"}


def gpu_price_family(gpu_type: str) -> PriceFamily:
    """The price family CU tables bill `gpu_type` under. A type fcbench does not know is priced
    "ada" when its name says so (FC names its Ada cards ``fc.gpu.ada.*``), else "tesla"."""
    known = GPU_TYPES.get(gpu_type)
    if known is not None:
        return known.price_family
    return "ada" if "ada" in gpu_type else "tesla"


# ---- FC 3.0's published limits --------------------------------------------------------------
# Sources: the field docs of CreateFunctionInput in FC 3.0's SDK (alibabacloud-fc20230330, the
# text of FC's API reference) and FC's "Configure environment variables" page.
#: `functionName`: 1-64 characters; a trigger's name 1-128 (CreateTriggerInput).
FUNCTION_NAME_MAX, TRIGGER_NAME_MAX = 64, 128
#: `timeout`: "The minimum value is 1, the maximum value is 86400" (FC 3.0's longest execution).
MAX_TIMEOUT_S = 86_400
#: `memorySize`: "a multiple of 64 MB ... minimum 128 MB and maximum 32 GB"; the same for GPU
#: and CPU functions (a GPU function's card memory is `gpuConfig.gpuMemorySize`, apart).
MIN_MEMORY_MB, MAX_MEMORY_MB, MEMORY_STEP_MB = 128, 32 * 1024, 64
#: `cpu`: 0.05-16 vCPU in steps of 0.05 (at 1:1-1:4 vCPU : GB of memorySize).
CPU_STEP, MAX_CPU = 0.05, 16
#: `diskSize`: "Valid values: 512 and 10240".
DISK_SIZES_MB = (512, 10_240)
#: `instanceConcurrency`: 1-100 requests at once per instance.
MAX_INSTANCE_CONCURRENCY = 100
#: Initializer / preStop `timeout`: FC 3.0's reference gives no range (FC 2.0 documented 1-300 s
#: for initializationTimeout); 600 s leaves room for a large model load and refuses absurd values.
MAX_HOOK_TIMEOUT_S = 600
#: Harness-only durations (idleTimeout, queue.timeout, startTimeout): a day, like FC's timeout.
MAX_HARNESS_S = 86_400
#: `harness.maxInstances` / `minInstances`: PutProvisionConfig's `defaultTarget` is "0 to 10000",
#: and minInstances is that target, so maxInstances has the same ceiling.
MAX_INSTANCES = 10_000
#: `harness.reservedConcurrency` (PutConcurrencyConfig): FC's reference gives no ceiling (its
#: account quota does); more than every instance's every slot could never be used.
MAX_RESERVED_CONCURRENCY = MAX_INSTANCES * MAX_INSTANCE_CONCURRENCY
#: `harness.queue.size`: requests waiting per function; far above any benchmark's need.
MAX_QUEUE_SIZE = 100_000
#: FC's documented limit "the total size of all environment variables cannot exceed 4 KB"
#: ("Configure environment variables"). FC does not say how it counts; fcbench counts the UTF-8
#: bytes of every name and value.
MAX_ENV_BYTES = 4 * 1024
#: A custom container image's largest uncompressed size: 10 GB for CPU instances, 15 GB for GPU
#: instances (FC's "Custom container images" page, Limits, ACR Personal / Enterprise Edition).
MAX_IMAGE_MB_CPU, MAX_IMAGE_MB_GPU = 10 * 1024, 15 * 1024

#: FC's limit on a synchronous invocation's request body (EntityTooLarge beyond it).
MAX_SYNC_PAYLOAD_BYTES = 32 * 1024 * 1024
#: FC's limit on an asynchronous invocation's request body ("128 KB"; EntityTooLarge beyond it).
MAX_ASYNC_PAYLOAD_BYTES = 128 * 1024
#: PutAsyncInvokeConfigInput (the SDK's field docs): `maxAsyncEventAgeInSeconds` "Valid values:
#: [1,604800]. Default value: 86400"; `maxAsyncRetryAttempts` "Valid values: [0,8]. If you do
#: not configure this parameter, the default number of retries is 3".
MIN_ASYNC_EVENT_AGE_S, MAX_ASYNC_EVENT_AGE_S, DEFAULT_ASYNC_EVENT_AGE_S = 1, 604_800, 86_400
MAX_ASYNC_RETRY_ATTEMPTS, DEFAULT_ASYNC_RETRY_ATTEMPTS = 8, 3
#: `x-fc-async-task-id`: starts with a letter or _, then letters, digits, _ and -, at most 128.
ASYNC_TASK_ID_MAX = 128
#: A throttled (429) asynchronous invocation: "retries for up to 5 hours using exponential
#: backoff. The first retry starts 0.5 seconds after the failure; subsequent intervals double"
#: (FC 3.0, "Configure a retry mechanism"); such retries are not counted as retry attempts.
ASYNC_THROTTLE_FIRST_RETRY_S, ASYNC_THROTTLE_RETRY_FOR_S = 0.5, 5 * 3600.0
#: An async task's `status` values (the SDK's ListAsyncTasksRequest) and those it ends in.
ASYNC_TASK_STATUSES = ("Enqueued", "Dequeued", "Running", "Succeeded", "Failed", "Stopped",
                       "Stopping", "Expired", "Invalid", "Retrying")
ASYNC_TASK_ENDED = ("Succeeded", "Failed", "Stopped", "Expired", "Invalid")
__all__ += ["ASYNC_TASK_ENDED", "ASYNC_TASK_STATUSES", "ASYNC_TASK_ID_MAX", "ASYNC_THROTTLE_FIRST_RETRY_S", "ASYNC_THROTTLE_RETRY_FOR_S",
            "DEFAULT_ASYNC_EVENT_AGE_S", "DEFAULT_ASYNC_RETRY_ATTEMPTS", "MAX_ASYNC_EVENT_AGE_S",
            "MAX_ASYNC_PAYLOAD_BYTES", "MAX_ASYNC_RETRY_ATTEMPTS", "MIN_ASYNC_EVENT_AGE_S"]
#: ListFunctions / ListTriggers: the default page size and the largest `limit`.
LIST_PAGE_SIZE, MAX_LIST_LIMIT = 20, 100

# ---- triggers -------------------------------------------------------------------------------
#: The methods FC's console (and the fc3 component's schema) offer for an HTTP trigger.
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")
#: An HTTP trigger's `authType` values.
TRIGGER_AUTH_TYPES = ("anonymous", "function")
#: Provision configs and triggers attach to a version or alias; LATEST is the unpublished code.
DEFAULT_QUALIFIER = "LATEST"

# ---- defaults -------------------------------------------------------------------------------
#: `customContainerConfig.port`: where FC sends requests inside a custom container.
DEFAULT_PORT = 9000
#: `timeout` and `instanceConcurrency` when a spec names none.
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_INSTANCE_CONCURRENCY = 1
#: Initializer and preStop hook timeouts when a spec names none.
DEFAULT_INITIALIZER_TIMEOUT_S = 60.0
DEFAULT_PRE_STOP_TIMEOUT_S = 10.0
#: FC reclaims idle instances after "usually 3-5 min"; the harness's `idleTimeout` default.
DEFAULT_IDLE_TIMEOUT_S = 300.0
#: The harness's own defaults for what FC does not publish: instances, queue, start-up wait.
DEFAULT_MAX_INSTANCES = 10
DEFAULT_QUEUE_SIZE = 100
DEFAULT_QUEUE_TIMEOUT_S = 60.0
DEFAULT_START_TIMEOUT_S = 120.0
