"""The contract every sample model meets, so the in-instance server can serve any of them.

Key names: `Model` (protocol), `BadInput` (a request body the model cannot use → HTTP 400),
`int_option` (an integer option from the environment, checked).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["BadInput", "Model", "int_option"]


class BadInput(ValueError):
    """The request body cannot be turned into model input; the message says why (sent as HTTP 400)."""


@runtime_checkable
class Model(Protocol):
    """A loaded model, as the in-instance server sees it.

    The server calls `decode` on the event loop thread for each request, then `infer` on a worker
    thread with a batch of decoded inputs (one per request; batch size 1 unless batching is on), and
    `encode` to make each request's response body.
    """

    #: Short name used in specs and headers, e.g. "mobilenet-v2".
    name: str

    def decode(self, body: bytes, content_type: str) -> Any:
        """Turn one request body into one model input; raise `BadInput` with a sentence on failure."""

    def infer(self, inputs: list[Any]) -> list[Any]:
        """Run the model once on a batch of decoded inputs; return one output per input, in order."""

    def encode(self, output: Any) -> tuple[bytes, str]:
        """Turn one output into a response body and its content type."""


def int_option(options: Mapping[str, str], key: str, default: int | None, low: int,
               high: int | None = None) -> int | None:
    """`options[key]` as an integer from `low` to `high` (inclusive), `default` when unset or
    blank.

    Raises:
        ValueError: a sentence naming the key and the value it takes.
    """
    raw = str(options.get(key) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key} must be an integer; got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{key} must be {bound}; got {value}")
    return value
