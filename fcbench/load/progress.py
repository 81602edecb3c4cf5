"""The live progress line of `fcbench run`: sent, answered, errors, cold, in flight, from the
status files the Locust processes publish.

Key names: `Progress`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any



if TYPE_CHECKING:
    pass

log = logging.getLogger("fcbench.load.runner")

from .config import LocustConfig, RunOptions, status_path


class Progress:
    """A live line (rich) with elapsed time, sent, errors and cold starts."""

    def __init__(self, cfg: LocustConfig, opts: RunOptions, workload: Any,
                 control: Path) -> None:
        from rich.console import Console

        self.cfg, self.opts, self.control = cfg, opts, control
        self.console = Console(stderr=True)
        self.t0 = time.monotonic()
        self.started_at: float | None = None
        self._live = None
        self._last_plain = 0.0
        self.name = str(workload.name)
        if self.console.is_terminal:
            from rich.live import Live
            self._live = Live(self._render({}), console=self.console, refresh_per_second=4,
                              transient=False)
            self._live.start()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _status(self) -> dict[str, Any]:
        main = status_path(self.control, "main")
        paths = [main] if main.exists() else sorted(self.control.glob("status-w*.json"))
        total: dict[str, Any] = {}
        for p in paths:
            try:
                data = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            for key in ("sent", "done", "errors", "cold", "in_flight", "expected"):
                total[key] = total.get(key, 0) + int(data.get(key) or 0)
            total["started"] = total.get("started", False) or bool(data.get("started"))
        return total

    def _render(self, s: dict[str, Any]) -> Any:
        from rich.text import Text

        if not s.get("started"):
            waiting = "waiting for Start in the web UI" if self.opts.ui and not \
                self.opts.autostart else "starting Locust"
            return Text(f"{self.name}: {waiting}… {self.elapsed():.0f}s", style="dim")
        if self.started_at is None:
            self.started_at = time.monotonic()
        run_s = time.monotonic() - self.started_at
        dur = self.cfg.duration_s
        frac = min(1.0, run_s / dur) if dur > 0 else 1.0
        width = 24
        bar = "█" * int(frac * width) + "░" * (width - int(frac * width))
        expected = f"/~{s['expected']}" if s.get("expected") else ""
        text = Text()
        text.append(f"{self.name} ", style="bold")
        text.append(f"{bar} {min(run_s, dur):5.0f}/{dur:.0f}s  ")
        text.append(f"sent {s.get('sent', 0)}{expected}  ")
        text.append(f"in flight {s.get('in_flight', 0)}  ")
        text.append(f"errors {s.get('errors', 0)}  ", style="red" if s.get("errors") else "")
        text.append(f"cold {s.get('cold', 0)}", style="cyan")
        return text

    def update(self) -> None:
        s = self._status()
        if self._live is not None:
            self._live.update(self._render(s))
        elif s.get("started") and time.monotonic() - self._last_plain >= 10.0:
            self._last_plain = time.monotonic()
            self.console.print(self._render(s), soft_wrap=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._render(self._status()))
            self._live.stop()


# -- results ------------------------------------------------------------------------------------
