"""Every error fcbench raises on purpose, under one root so callers can catch by kind.

    FcbenchError
    ├── SpecError                 a YAML/JSON spec is wrong (file, line, key)
    │   └── TraceFormatError      a trace CSV is wrong (also a ValueError)
    ├── UsageError (RuntimeError) the API was used the wrong way (e.g. a closed harness)
    ├── TargetError               an invocation did not produce a normal response
    │   ├── InvokeTimeout
    │   ├── Rejected              the platform refused it (status, FC code, reason)
    │   │   └── Throttled         429 ResourceThrottled
    │   ├── InstanceGone          the instance broke the connection mid-request
    │   └── InstanceStartError    an instance failed to start (log path in the message)
    ├── RuntimeBackendError       the runtime that runs instances is unusable
    │   ├── DockerUnavailable
    │   └── GpuRuntimeMissing
    ├── GpuError                  a GPU-memory spec cannot be placed on any GPU
    └── FcApiError                FC answered with an error (code, request_id)

Messages are sentences that say what to change.
"""

from __future__ import annotations

__all__ = [
    "DockerUnavailable",
    "FcApiError",
    "FcbenchError",
    "GpuError",
    "GpuRuntimeMissing",
    "InstanceGone",
    "InstanceStartError",
    "InvokeTimeout",
    "Rejected",
    "RuntimeBackendError",
    "SpecError",
    "TargetError",
    "Throttled",
    "TraceFormatError",
    "UsageError",
]


class FcbenchError(Exception):
    """Root of every error fcbench raises on purpose."""


class SpecError(FcbenchError):
    """A function spec or workload is invalid; carries the file, line and key path."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 path: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.path = path
        where = file or "<spec>"
        if line is not None:
            where = f"{where}:{line}"
        key = f" {path}:" if path else ""
        super().__init__(f"{where}:{key} {message}")


class TraceFormatError(SpecError, ValueError):
    """A trace file is not in the expected format; the message names file:line."""

    def __init__(self, message: str) -> None:
        # the message already reads "file:line: what is wrong"
        Exception.__init__(self, message)
        self.message, self.file, self.line, self.path = message, None, None, None


class UsageError(FcbenchError, RuntimeError):
    """The library was used in a way it does not support (for example, reusing a closed object)."""


class TargetError(FcbenchError):
    """An invocation failed before a normal response came back."""


class InvokeTimeout(TargetError):
    """No response within the configured timeout."""


class Rejected(TargetError):
    """The platform refused the request; `status` and `code` are what FC would answer."""

    def __init__(self, message: str, *, reason: str, status: int, code: str) -> None:
        self.reason = reason
        self.status = status
        self.code = code
        super().__init__(message)


class Throttled(Rejected):
    """The platform answered 429 ResourceThrottled: no instance and no queue room."""


class InstanceGone(TargetError):
    """The connection to the instance broke (it crashed or was stopped mid-request)."""


class InstanceStartError(TargetError):
    """An instance could not start; the message names the log file that holds its output."""


class RuntimeBackendError(FcbenchError):
    """The runtime that runs instances (a process launcher, a Docker daemon) cannot be used."""


class DockerUnavailable(RuntimeBackendError):
    """No Docker daemon answers."""


class GpuRuntimeMissing(RuntimeBackendError):
    """A GPU spec was given but no NVIDIA container runtime or GPU is available."""


class GpuError(FcbenchError):
    """A GPU-memory spec does not fit any GPU the harness knows."""


class FcApiError(FcbenchError):
    """Function Compute answered with an error."""

    def __init__(self, message: str, *, code: str | None = None,
                 request_id: str | None = None) -> None:
        self.code = code
        self.request_id = request_id
        super().__init__(message)
