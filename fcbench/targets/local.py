"""`LocalTarget`: the local serverless GPU harness, started for the target's lifetime.

Key names: `LocalTarget`. Requests go over real HTTP to the harness's FC 3.0 invoke route (or an
HTTP-trigger path), exactly as a `UrlTarget` pointed at ``HarnessThread.url`` would send them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..protocol import InvocationRecord
from .base import ColdStartMethod, Target
from .harness_client import HarnessClient
from .url import DEFAULT_TIMEOUT_S, UrlTarget

if TYPE_CHECKING:
    from ..harness.server import HarnessConfig
    from ..spec import FunctionSpec

__all__ = ["LocalTarget"]


class LocalTarget(Target):
    """Start a harness serving `specs` and invoke `function` (default: the only spec) on it.

    Args:
        specs: the function specs the harness serves.
        function: which function requests go to.
        path: an HTTP-trigger path (``/http/{fn}/{path}``) instead of InvokeFunction.
        config: harness settings (default: 127.0.0.1, a free port).
        timeout: default seconds to wait for a response.
    """

    name = "local"

    def __init__(self, specs: Sequence[FunctionSpec], *, function: str | None = None,
                 path: str | None = None, config: HarnessConfig | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        from ..harness.server import HarnessConfig, HarnessThread

        super().__init__()
        names = [s.name for s in specs]
        if function is None:
            if len(names) != 1:
                raise UsageError(f"the harness serves {len(names)} functions ({names}); "
                                 "say which one to invoke with function=")
            function = names[0]
        elif function not in names:
            raise UsageError(f"function {function!r} is not among the specs ({names})")
        self.function = function
        self.harness = HarnessThread(specs, config or HarnessConfig(port=0))
        self.harness.__enter__()
        self.url = self.harness.url
        self._http = UrlTarget(self.url, function=function, path=path, timeout=timeout,
                               key=self.harness.key)
        self._control = HarnessClient(self.url, key=self.harness.key)

    def _invoke(self, body: bytes, content_type: str, timeout: float | None) -> InvocationRecord:
        return self._http._invoke(body, content_type, timeout)

    @property
    def cold_start_method(self) -> ColdStartMethod:
        return ColdStartMethod.RECLAIM

    def force_cold(self) -> None:
        """Reclaim the function's idle instances through the harness API."""
        self._control.reclaim(self.function)

    def harness_client(self) -> HarnessClient:
        return self._control

    def close(self) -> None:
        if self.state.value == "closed":
            return
        try:
            self._http.close()
            self._control.close()
        finally:
            self.harness.close()
            super().close()
