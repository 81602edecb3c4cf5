"""The "Cold starts" tab of Locust's web UI (runs inside the Locust process only).

Key names: `install`. Uses Locust's own extension points: ``template_args["extended_tabs"]`` /
``["extended_tables"]`` declare the tab and its table, and the rows ride along in the
``extended_stats`` of ``/stats/requests``, which the UI polls. ``GET /fcbench/cold-starts`` serves
the same numbers as JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from fcbench.measures import wilson

__all__ = ["TAB_KEY", "cold_start_rows", "install"]

TAB_KEY = "cold-starts"
TAB_TITLE = "Cold starts"
_INSTANCES_TTL_S = 1.0


class _Instances:
    """Live instances from the harness (``GET /fcbench/v1/instances``), cached for a second."""

    def __init__(self, harness_url: str | None) -> None:
        from ..targets.harness_client import HarnessClient

        self.url = harness_url
        self._client = HarnessClient(harness_url, timeout=2) if harness_url else None
        self._at = 0.0
        self._value: dict[str, Any] | None = None

    def get(self) -> dict[str, Any] | None:
        if self._client is None:
            return None
        if time.monotonic() - self._at < _INSTANCES_TTL_S:
            return self._value
        self._at = time.monotonic()
        try:
            items = self._client.instances()
        except Exception:  # noqa: BLE001 - the tab shows "unknown" instead
            self._value = None
            return None
        states: dict[str, int] = {}
        for inst in items:
            states[inst.get("state", "?")] = states.get(inst.get("state", "?"), 0) + 1
        self._value = {"live": len(items), "states": states,
                       "busy": sum(1 for i in items if i.get("in_flight"))}
        return self._value


def cold_start_data(snapshot: dict[str, Any], instances: dict[str, Any] | None) -> dict[str, Any]:
    """The tab's numbers: cold count, P(cold) with its 95% Wilson interval, live instances."""
    # P(cold) = cold / every request that ended (fcbench.measures): 429s and failures included
    k, n = int(snapshot.get("cold") or 0), int(snapshot.get("done") or 0)
    lo, hi = wilson(k, n)
    return {"cold": k, "requests": int(snapshot.get("done") or 0), "cold_known": n,
            "p_cold": (k / n) if n else None, "p_cold_lo": lo, "p_cold_hi": hi,
            "sent": int(snapshot.get("sent") or 0), "errors": int(snapshot.get("errors") or 0),
            "in_flight": int(snapshot.get("in_flight") or 0),
            "live_instances": None if instances is None else instances["live"],
            "instance_states": None if instances is None else instances["states"],
            "recent_cold_ms": list(snapshot.get("recent_cold_ms") or [])}


def cold_start_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    """`cold_start_data` as the (metric, value) rows of the tab's table."""
    p = data["p_cold"]
    pc = "–" if p is None else \
        f"{p:.3f}  (95% CI {data['p_cold_lo']:.3f} – {data['p_cold_hi']:.3f})"
    live = "unknown (not a local harness)" if data["live_instances"] is None else \
        f"{data['live_instances']}" + (
            "  (" + ", ".join(f"{v} {k}" for k, v in sorted(data["instance_states"].items()))
            + ")" if data["instance_states"] else "")
    recent = ", ".join(f"{v:.0f}" for v in reversed(data["recent_cold_ms"])) or "–"
    return [
        {"metric": "Cold starts", "value": str(data["cold"])},
        {"metric": "P(cold)", "value": pc},
        {"metric": "Requests done (cold/warm known)",
         "value": f"{data['requests']} ({data['cold_known']})"},
        {"metric": "Live instances", "value": live},
        {"metric": "Latest cold-start latencies (ms, newest first)", "value": recent},
        {"metric": "Sent / in flight / errors",
         "value": f"{data['sent']} / {data['in_flight']} / {data['errors']}"},
    ]


def install(environment: Any, snapshot: Callable[[], dict[str, Any]], *,
            harness_url: str | None = None) -> None:
    """Add the "Cold starts" tab to `environment.web_ui` (call from Locust's ``init`` event)."""
    from flask import jsonify, request

    web_ui = environment.web_ui
    instances = _Instances(harness_url)
    web_ui.template_args["extended_tabs"] = [{"title": TAB_TITLE, "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": [
        {"key": "metric", "title": "Metric"}, {"key": "value", "title": "Value"}]}]

    def data() -> dict[str, Any]:
        return cold_start_data(snapshot(), instances.get())

    @web_ui.app.after_request
    def _extend_stats(response: Any) -> Any:
        if not request.path.endswith("/stats/requests") or response.status_code != 200:
            return response
        try:
            body = json.loads(response.get_data())
        except ValueError:
            return response
        body["extended_stats"] = [{"key": TAB_KEY, "data": cold_start_rows(data())}]
        response.set_data(json.dumps(body))
        return response

    @web_ui.app.route("/fcbench/cold-starts")
    def _cold_starts() -> Any:
        return jsonify(data())
