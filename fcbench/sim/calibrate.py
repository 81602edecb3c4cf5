"""What a measured run says about its function, as samples the simulator draws from.

Key names: `Calibration`, `calibrate`, `engine_options`. Warm service times come from the warm
requests of ``requests.csv`` (the time the gateway held the instance, ``forward_ms``, where the
harness recorded it; else the latency less the queueing); cold ones — a fresh instance's first
requests, which run slower (first inference, a new connection) — from the cold requests, kept
apart; start-up times from ``instances.csv`` (ready − created, as the harness timed each start),
else from the cold requests' extra wait over the warm median. A cold-start profile folder
(``phases.csv``) gives both from its phases. Start-up samples are in-instance: the platform phases
a start held (`harness.platform`, listed with the instance) are taken out, since the simulator
adds the simulated spec's own (`fcbench.harness.platform_phases.start_time_s`). Which request is warm or cold is
`fcbench.measures.outcomes`, as everywhere. `Calibration.resample` is one bootstrap replicate of
the samples (for predictions with the calibration's own sampling error). Where the requests
carry token counts (an LLM function), `Calibration.tokens` is the per-token fit of their service
times (`fcbench.sim.tokens`), and `Calibration.tokens_note` says what it is or why there is none.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..harness.platform_phases import platform_ms
from ..results import RunFolder, layout
from .tokens import TokenFit, TokenRows, drawn_means, fit_tokens

__all__ = ["Calibration", "calibrate", "engine_options"]


@dataclass(frozen=True)
class Calibration:
    """Samples (milliseconds) of one function's warm service time and instance start-up time.

    Args:
        service_ms: warm service times.
        startup_ms: instance start-up times (created → ready, less the platform phases).
        sources: the run folders they came from.
        startup_from: ``instances.csv``, ``phases.csv`` (both joined by `` + `` when pooled),
            or ``cold requests``.
        service_from: ``warm requests``, or cold ones when no request was warm.
    """

    service_ms: tuple[float, ...]
    startup_ms: tuple[float, ...]
    sources: tuple[str, ...]
    startup_from: str = layout.INSTANCES
    service_from: str = "warm requests"
    #: service times of cold requests (they waited for their instance's start); empty: none
    #: measured, cold requests draw warm times
    cold_service_ms: tuple[float, ...] = ()
    #: service time per token of prompt and answer (None: no token counts, or no fit)
    tokens: TokenFit | None = None
    #: the fit in a sentence, or why there is none ("" when no request carried token counts)
    tokens_note: str = ""

    def resample(self, rng: random.Random) -> Calibration:
        """One bootstrap replicate: every sample set drawn again, with replacement, at its own
        size (the calibration's sampling error, for prediction intervals)."""
        def again(values: tuple[float, ...]) -> tuple[float, ...]:
            n = len(values)
            return tuple(values[int(rng.random() * n)] for _ in range(n))
        return replace(self, service_ms=again(self.service_ms),
                       startup_ms=again(self.startup_ms),
                       cold_service_ms=again(self.cold_service_ms),
                       tokens=self.tokens.resample(rng) if self.tokens is not None else None)

    def draw_cold_service(self, rng: random.Random) -> Callable[[], float] | None:
        """A sampler of cold requests' service times (ms), or None when none was measured."""
        return _resampler(self.cold_service_ms, rng) if self.cold_service_ms else None

    def draw_service(self, rng: random.Random) -> Callable[[], float]:
        """A sampler of warm service times (ms), resampling the measured ones."""
        return _resampler(self.service_ms, rng)

    def draw_startup(self, rng: random.Random) -> Callable[[], float]:
        """A sampler of start-up times (ms), resampling the measured ones."""
        return _resampler(self.startup_ms, rng)

    @property
    def service_median_ms(self) -> float:
        return statistics.median(self.service_ms)

    @property
    def service_mean_ms(self) -> float:
        return statistics.fmean(self.service_ms)

    def describe(self) -> dict[str, object]:
        """What run.yaml records about the calibration (sample counts and medians)."""
        return {"sources": list(self.sources), "service_samples": len(self.service_ms),
                "service_median_ms": round(self.service_median_ms, 3),
                "startup_samples": len(self.startup_ms),
                "startup_median_ms": round(statistics.median(self.startup_ms), 3),
                "startup_from": self.startup_from, "service_from": self.service_from,
                "cold_service_samples": len(self.cold_service_ms),
                "cold_service_median_ms": round(statistics.median(self.cold_service_ms), 3)
                if self.cold_service_ms else None,
                "tokens": self.tokens.describe() if self.tokens is not None else None,
                "tokens_note": self.tokens_note or None}


def _resampler(samples: tuple[float, ...], rng: random.Random) -> Callable[[], float]:
    values = list(samples)
    return lambda: values[int(rng.random() * len(values))]


def engine_options(settings: Any, duration_s: float | None) -> dict[str, Any]:
    """What `fcbench.sim.engine.simulate` takes beyond the samplers, for a simulation with
    `settings` (`SimulationSettings`) of a run lasting `duration_s`: cold requests' own service
    times where a calibration gives the service times, and the planned end (`until`), so the
    simulated metering covers the same window as the harness's."""
    cal = getattr(settings, "calibration", None)
    out: dict[str, Any] = {"until": duration_s}
    if cal is not None and getattr(settings, "service_ms", None) is None:
        cold = cal.draw_cold_service(random.Random(f"cold-{settings.seed}"))
        if cold is not None:
            out["cold_service_s"] = lambda: cold() / 1000.0
    return out


def calibrate(run_dirs: Iterable[str | Path | RunFolder], *,
              function: str | None = None) -> Calibration:
    """Pool the warm service and start-up times of one or more run folders (e.g. every level of
    a sweep). `function` keeps only that function's instances when a run served several.

    Raises:
        UsageError: a folder without requests.csv, or no warm request to learn from.
    """
    from ..measures import outcomes

    service: list[float] = []
    cold_held: list[float] = []
    startup: list[float] = []
    cold_latency: list[float] = []
    sources: list[str] = []
    labels: set[str] = set()  # where the start-ups came from
    token_rows: list[TokenRows] = []
    bridges: list[tuple[float, float, float, float, int]] = []  # measured / drawn means, n
    for folder in (RunFolder.of(p) for p in run_dirs):
        run = folder.path
        if not folder.has(layout.REQUESTS) and folder.has(layout.PHASES):
            sources.append(str(run))  # a cold-start profile: its phases time every start
            warm, starts = _from_phases(folder)
            service.extend(warm)
            startup.extend(starts)
            labels.add(layout.PHASES)
            continue
        if not folder.has(layout.REQUESTS):
            raise UsageError(f"{run} is not a run folder (no {layout.REQUESTS} or "
                             f"{layout.PHASES}) to calibrate from")
        sources.append(str(run))
        df = folder.requests()
        kinds = outcomes(df["status"], df["cold"])
        held = _held_ms(df)
        service.extend(_finite(held[kinds == "warm"]))
        cold_held.extend(_finite(held[kinds == "cold"]))
        rows = _token_rows(df, kinds, held)
        if rows is not None:
            token_rows.append(rows)
            drawn = drawn_means(_recorded_generator(folder), len(df))
            if drawn is not None:
                bridges.append((float(rows.input.mean()), float(rows.output.mean()),
                                *drawn, len(rows)))
        starts = _startups_ms(folder.instance_rows(), function)
        startup.extend(starts)
        if starts:
            labels.add(layout.INSTANCES)
        if not starts:
            cold_latency.extend(_finite(df["latency_ms"].to_numpy(dtype=float)[kinds == "cold"]))
    service_from = "warm requests"
    cold_service = tuple(cold_held)
    if not service and cold_held:
        # every request was cold: what they held the instance for is still a service time
        service, service_from = cold_held, "cold requests (none was warm)"
    if not service:
        raise UsageError(f"no successful request in {', '.join(sources) or 'the folders given'}"
                         " to learn a service time from; run longer, or give --service-ms")
    startup_from = " + ".join(sorted(labels))
    if not startup:
        # a cold request waited for the start, then was served
        median = statistics.median(service)
        startup = [max(0.0, x - median) for x in cold_latency]
        startup_from = "cold requests"
    if not startup:
        raise UsageError(f"no instance start was measured (no {layout.INSTANCES}, no cold "
                         "request) to learn a start-up time from; give --startup-ms")
    fit, note = fit_tokens(TokenRows.concat(token_rows), units=_units(bridges)) \
        if token_rows else (None, "")
    return Calibration(tuple(service), tuple(startup), tuple(sources), startup_from,
                       service_from, cold_service, fit, note)


def _recorded_generator(folder: RunFolder) -> dict[str, Any] | None:
    """The request generator a run folder's run.yaml recorded (``workload.request.openai``)."""
    workload = folder.config().get("workload")
    request = workload.get("request") if isinstance(workload, dict) else None
    config = request.get("openai") if isinstance(request, dict) else None
    return config if isinstance(config, dict) else None


def _units(bridges: list[tuple[float, float, float, float, int]]) -> dict[str, float]:
    """Server tokens per generator token, pooled over runs (weighted by their requests)."""
    if not bridges:
        return {}
    def weight(k: int) -> float:
        return sum(b[k] * b[4] for b in bridges)

    out = {}
    for name, measured, drawn in (("input_tokens", 0, 2), ("output_tokens", 1, 3)):
        if weight(drawn) > 0:
            out[name] = weight(measured) / weight(drawn)
    return out


def _token_rows(df: Any, kinds: np.ndarray, held: np.ndarray) -> TokenRows | None:
    """The successful requests with both token counts and a hold time (None: none has)."""
    if "input_tokens" not in df or "output_tokens" not in df:
        return None
    def col(name: str) -> np.ndarray:
        return df[name].to_numpy(dtype=float) if name in df else np.full(len(df), np.nan)

    inputs, outputs = col("input_tokens"), col("output_tokens")
    ok = ((kinds == "warm") | (kinds == "cold")) & np.isfinite(inputs) & np.isfinite(outputs) \
        & np.isfinite(held)
    if not ok.any():
        return None
    # from reaching the instance to the first token: the queueing (a cold request's start
    # included) is the simulator's own
    first = col("ttft_ms") - np.nan_to_num(col("queue_ms"), nan=0.0)
    return TokenRows(inputs[ok], outputs[ok], held[ok], first[ok], col("tpot_ms")[ok],
                     (kinds == "cold")[ok])


def _from_phases(folder: RunFolder) -> tuple[list[float], list[float]]:
    """A profile's warm service times (its warm requests, ``warm_ms``) and start-ups: each
    forced cold start's end-to-end time less what serving it took (first inference and
    transit) and less its platform phases, so the start covers every in-instance phase before
    the instance was ready."""
    import io

    import pandas as pd

    df = pd.read_csv(io.StringIO(folder.text(layout.PHASES) or ""), keep_default_na=False,
                     na_values={c: [""] for c in
                     ("e2e_ms", "warm_ms", "first_inference_ms", "transit_ms")})
    ok = df[df["kind"] == "ok"] if "kind" in df else df
    warm = _finite(ok["warm_ms"].to_numpy(dtype=float)) if "warm_ms" in ok else []
    served = ok.get("first_inference_ms", 0.0).fillna(0.0) + ok.get("transit_ms", 0.0).fillna(0.0)
    platform = ok.apply(lambda row: platform_ms(row, "{}_ms"), axis=1) if len(ok) else 0.0
    starts = _finite((ok["e2e_ms"] - served - platform).to_numpy(dtype=float)) \
        if "e2e_ms" in ok else []
    return warm, [max(0.0, x) for x in starts]


def _finite(values: np.ndarray) -> list[float]:
    return [float(x) for x in values[np.isfinite(values)]]


def _held_ms(df: Any) -> np.ndarray:
    """How long each request held its instance (ms): the gateway's forward time where the harness
    recorded it, else the client's latency less the time it queued."""
    latency = df["latency_ms"].to_numpy(dtype=float)
    queue = df["queue_ms"].to_numpy(dtype=float) if "queue_ms" in df else np.zeros_like(latency)
    held = latency - np.nan_to_num(queue, nan=0.0)
    if "forward_ms" in df:
        forward = df["forward_ms"].to_numpy(dtype=float)
        held = np.where(np.isfinite(forward), forward, held)
    return held


def _startups_ms(rows: list[dict[str, str]] | None, function: str | None) -> list[float]:
    out = []
    for row in rows or []:
        if function and row.get("function") not in (None, "", function):
            continue
        try:
            created, ready = float(row["created_ts"]), float(row["ready_ts"])
        except (KeyError, TypeError, ValueError):
            continue  # never became ready (a failed start)
        if ready >= created:
            out.append(max(0.0, (ready - created) * 1000.0 - platform_ms(row, "phases_ms.{}")))
    return out
