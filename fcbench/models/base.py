"""The contract every sample model meets, so the in-instance server can serve any of them.

Key names: `Model` (protocol), `BadInput` (a request body the model cannot use → HTTP 400).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["BadInput", "Model"]


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
