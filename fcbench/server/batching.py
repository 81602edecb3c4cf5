"""Request aggregation: concurrent requests on one instance ride in one model call.

Key names: `Batcher`. FC advises batching for batch-capable models when `instanceConcurrency` > 1;
one batch runs at a time, and requests that arrive meanwhile form the next batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BatchResult", "Batcher"]


@dataclass(frozen=True)
class BatchResult:
    """One request's output and the batch it rode in."""

    output: Any
    batch_size: int
    inference_ms: float


class Batcher:
    """Collects items for up to `max_wait_s` (or until `max_size`) and runs them as one call.

    Args:
        run: runs the model on a list of inputs, returning one output per input.
        max_size: largest batch (the instance's slots, usually).
        max_wait_s: how long the first item of a batch waits for company.
    """

    def __init__(self, run: Callable[[list[Any]], Awaitable[list[Any]]], *, max_size: int,
                 max_wait_s: float) -> None:
        if max_size < 1 or max_wait_s < 0:
            raise ValueError("a batch needs max_size >= 1 and max_wait_s >= 0")
        self._run = run
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._pending: list[tuple[Any, asyncio.Future[BatchResult]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running = False
        self.calls = 0

    async def submit(self, item: Any) -> BatchResult:
        """Queue one input; returns its output once its batch has run."""
        fut: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        if len(self._pending) >= self.max_size:
            self._flush()
        elif self._timer is None and not self._running:
            self._timer = asyncio.get_running_loop().call_later(self.max_wait_s, self._flush)
        return await fut

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running or not self._pending:
            return
        batch, self._pending = self._pending[:self.max_size], self._pending[self.max_size:]
        self._running = True
        asyncio.ensure_future(self._run_batch(batch))

    async def _run_batch(self, batch: list[tuple[Any, asyncio.Future[BatchResult]]]) -> None:
        self.calls += 1
        t0 = time.perf_counter()
        try:
            outputs = await self._run([item for item, _ in batch])
            if len(outputs) != len(batch):
                raise RuntimeError(f"the model returned {len(outputs)} outputs for a batch of "
                                   f"{len(batch)} inputs")
        except Exception as exc:  # noqa: BLE001 - every rider gets the error
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            ms = (time.perf_counter() - t0) * 1000.0
            for (_, fut), out in zip(batch, outputs):
                if not fut.done():
                    fut.set_result(BatchResult(out, len(batch), ms))
        finally:
            self._running = False
            if self._pending:
                # these waited while the last batch ran: no extra wait for them
                self._flush()
