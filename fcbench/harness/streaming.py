"""Relaying a streamed response from an instance to its caller, piece by piece as it arrives.

Key names: `relay_stream`. FC streams a custom container's response when it carries
``Transfer-Encoding: chunked`` (SSE tokens, progress events); the gateway does the same: the head
goes out at once, then every piece the instance sends (`fcbench.harness.forward.BodyStream`).

What the request counts as once the stream ended (the ``on_end`` status and error):

* complete: the instance's status, no error;
* the function's ``timeout`` ran out before the last byte: ``504`` / ``timeout``. The head went
  out already, so no ``FunctionTimeout`` answer can follow: the stream is cut (the connection
  closes without the last chunk, which every HTTP client reports as an incomplete body);
* the instance closed or broke the stream: ``502`` / ``crash``, cut the same way;
* the caller hung up first: ``499`` / ``client_closed``. The instance's request is not cancelled:
  the gateway reads the rest of the stream and drops it, so the request runs to its end on the
  instance, holds its slot and is metered until then (as FC does: its 499 FAQ says the cancelled
  request goes on running on the instance);
* the gateway shut down mid-stream: ``503`` / ``shutdown``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from aiohttp import web

from ..errors import InstanceGone, InvokeTimeout
from .forward import BodyStream

__all__ = ["relay_stream"]


async def relay_stream(request: web.Request, status: int, headers: Mapping[str, str],
                       body: BodyStream, release: Callable[[], None],
                       on_end: Callable[[int, str | None], None]) -> web.StreamResponse:
    """Send `status` and `headers` now, then `body` as it arrives. `release()` is called once,
    when the instance's part is over (its last byte came, or the stream failed): its slot is
    held and metered until then; `on_end(status, error)` once the relay ended (see the module
    for what the request counts as)."""
    state = _State(request, release)
    body.on_expire = state.expired
    end_status, error = status, None
    try:
        response = web.StreamResponse(status=status, headers=headers)
        if body.ready:
            # the first piece came with the head: send both in one write (aiohttp coalesces
            # buffered headers with the first chunk; the head still goes out at once)
            response._send_headers_immediately = False
        try:
            await response.prepare(request)
        except ConnectionError:
            state.hung_up = True
        while True:
            try:
                piece = await body.read()
            except InvokeTimeout:
                end_status, error = 504, "timeout"
                state.release_once()
                state.cut()
                break
            except InstanceGone:
                end_status, error = 502, "crash"
                state.release_once()
                state.cut()
                break
            last = body.drained
            if last or not piece:
                # the instance sent its last byte: its slot is free before the caller has it
                # all, so a caller waiting on this one's answer never waits on this bookkeeping
                state.release_once()
            if not piece:
                break
            if state.hung_up:
                continue  # the instance's request goes on: read to its end, drop the rest
            state.writing = True
            try:
                if last:  # the last piece: with the terminating chunk, in one write
                    await response.write_eof(piece)
                    break
                await response.write(piece)
            except ConnectionError:
                state.hung_up = not state.timed_out
            finally:
                state.writing = False
        if error is None and not state.hung_up:
            try:
                await response.write_eof()
            except ConnectionError:
                state.hung_up = True
        if state.hung_up:
            end_status, error = 499, "client_closed"
    except asyncio.CancelledError:
        end_status, error = 503, "shutdown"
        raise
    finally:
        body.close()  # a no-op when the response was complete (the connection went back)
        state.release_once()
        on_end(end_status, error)
    return response


class _State:
    """Where a relay stands, for the timeout callback that may fire while a write blocks."""

    __slots__ = ("request", "release", "writing", "hung_up", "timed_out")

    def __init__(self, request: web.Request, release: Callable[[], None] | None) -> None:
        self.request = request
        self.release = release
        self.writing = False
        self.hung_up = False
        self.timed_out = False

    def release_once(self) -> None:
        release, self.release = self.release, None
        if release is not None:
            release()

    def expired(self) -> None:
        # a write blocked on a caller that stopped reading would outlive the timeout: abort it
        self.timed_out = True
        if self.writing:
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    def cut(self) -> None:
        """End the caller's response without its last chunk (the caller sees it incomplete)."""
        transport = self.request.transport
        if transport is not None:
            transport.close()
