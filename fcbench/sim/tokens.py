"""A calibrated run's service time as a function of its requests' lengths in tokens.

Key names: `TokenRows` (what a run measured per request), `TokenFit` (the fit, its residuals and
how to draw from it), `fit_tokens`, `TokenDraws`, `lengths_for`, `MIN_REQUESTS`.

Over the warm requests of an LLM run (``requests.csv`` with ``input_tokens`` and
``output_tokens``), least squares gives

    service_ms = intercept + prefill_ms_per_token × input_tokens + decode_ms_per_token × output_tokens

(service: how long the request held its instance, as `fcbench.sim.calibrate` reads it), and,
where the answers were streamed (``ttft_ms``), the time from reaching the instance to the first
token (TTFT less the queueing) = intercept + prefill × input_tokens. A simulated request's times
are its prediction for its own lengths plus the residual of one measured warm request (the
service and TTFT residuals of the same request, drawn together), so the measured spread stays; a
cold request adds one measured cold request's excess over its prediction (first inference, a new
connection) instead. A length that did not vary in the run leaves its coefficient unidentified
(folded into the intercept, and that length cannot be scaled); too few requests, or lengths that
move together, refuse the fit, and the calibration resamples plain service times.

A workload's generator counts its own tokens (a prompt's characters / ``charsPerToken``, and
``max_tokens``), the fit the server's (``usage``: its tokenizer, its chat template, answers that
stop early). Where the calibration run recorded its generator, `TokenFit.units` holds, per
length, the run's mean measured count over the mean its generator drew for the same requests,
and simulated lengths drawn from a generator are multiplied by it (`lengths_for`).
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MIN_REQUESTS", "TokenDraws", "TokenFit", "TokenRows", "drawn_means", "fit_tokens",
           "lengths_for", "scaled"]

#: Fewer warm requests with token counts than this and no fit is attempted.
MIN_REQUESTS = 10


@dataclass(frozen=True, eq=False)
class TokenRows:
    """What a run measured per successful request with token counts (arrays of one length):
    lengths, how long it held its instance (ms), its time from reaching the instance to the
    first token (``ttft_ms`` less ``queue_ms``; NaN where not streamed), its TPOT (NaN where
    none), and whether it was cold."""

    input: np.ndarray
    output: np.ndarray
    held_ms: np.ndarray
    first_ms: np.ndarray
    tpot_ms: np.ndarray
    cold: np.ndarray

    def __len__(self) -> int:
        return int(self.input.size)

    def take(self, index: np.ndarray) -> TokenRows:
        return TokenRows(*(a[index] for a in (self.input, self.output, self.held_ms,
                                              self.first_ms, self.tpot_ms, self.cold)))

    @classmethod
    def concat(cls, parts: list[TokenRows]) -> TokenRows:
        if not parts:
            empty = np.zeros(0)
            return cls(empty, empty, empty, empty, empty, np.zeros(0, dtype=bool))
        return cls(*(np.concatenate([getattr(p, k) for p in parts])
                     for k in ("input", "output", "held_ms", "first_ms", "tpot_ms", "cold")))


@dataclass(frozen=True)
class _Linear:
    """One least-squares fit: coefficients by name (None: that length did not vary), their
    standard errors, R² (None when the values did not vary at all) and the residuals (ms)."""

    intercept: float
    slopes: dict[str, float | None]
    errors: dict[str, float | None]
    r2: float | None
    residuals: np.ndarray = field(repr=False)

    def predict(self, lengths: dict[str, np.ndarray]) -> np.ndarray:
        out = np.full(next(iter(lengths.values())).shape, self.intercept, dtype=float)
        for name, slope in self.slopes.items():
            if slope is not None:
                out = out + slope * lengths[name]
        return out

    @property
    def spread_ms(self) -> float:
        """The residuals' standard deviation (ms)."""
        return float(np.std(self.residuals, ddof=1)) if self.residuals.size > 1 else 0.0


def _least_squares(y: np.ndarray, columns: dict[str, np.ndarray]) -> _Linear | str:
    """`y` = intercept + Σ slope × column over the columns that vary; a sentence when the
    columns that vary move together (their slopes cannot be told apart)."""
    varying = {k: v for k, v in columns.items() if np.unique(v).size >= 2}
    x = np.column_stack([np.ones_like(y), *varying.values()])
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return (f"{' and '.join(varying)} moved together in every request (one is a fixed "
                "function of the other), so their per-token times cannot be told apart")
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    residuals = y - x @ coef
    dof = y.size - x.shape[1]
    sigma2 = float(residuals @ residuals) / dof if dof > 0 else float("nan")
    cov = sigma2 * np.linalg.inv(x.T @ x)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(residuals @ residuals) / total if total > 0 else None
    slopes: dict[str, float | None] = {k: None for k in columns}
    errors: dict[str, float | None] = {k: None for k in columns}
    for j, name in enumerate(varying, start=1):
        slopes[name] = float(coef[j])
        errors[name] = float(np.sqrt(cov[j, j])) if np.isfinite(cov[j, j]) else None
    return _Linear(float(coef[0]), slopes, errors, r2 if varying else None, residuals)


@dataclass(frozen=True)
class TokenDraws:
    """Per simulated request (by its arrival number): its lengths, and its service time and
    time to the first token (ms, from reaching its instance) were it warm or cold."""

    input: np.ndarray
    output: np.ndarray
    warm_service_ms: np.ndarray
    cold_service_ms: np.ndarray
    warm_first_ms: np.ndarray
    cold_first_ms: np.ndarray

    def __len__(self) -> int:
        return int(self.input.size)


@dataclass(frozen=True, eq=False)
class TokenFit:
    """The per-token fit of a calibration (see the module docstring).

    Args:
        rows: the measured requests it came from (warm and cold).
        service: the warm service-time fit.
        first: the warm time-to-first-token fit (None: no answer was streamed).
        notes: sentences on what the fit could not identify.
        units: server tokens per generator token, per length (``input_tokens``,
            ``output_tokens``), from the calibration runs that recorded a generator; empty:
            none did.
    """

    rows: TokenRows
    service: _Linear
    first: _Linear | None
    notes: tuple[str, ...] = ()
    units: dict[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Warm requests fitted."""
        return int(self.service.residuals.size)

    @property
    def prefill_ms_per_token(self) -> float | None:
        return self.service.slopes["input_tokens"]

    @property
    def decode_ms_per_token(self) -> float | None:
        return self.service.slopes["output_tokens"]

    def scalable(self, what: str) -> str | None:
        """None when `what` (``input_tokens``, ``output_tokens``) can be scaled, else why not."""
        if self.service.slopes[what] is not None:
            return None
        values = self.rows.input if what == "input_tokens" else self.rows.output
        return (f"its {what} did not vary in the run (every request had "
                f"{int(np.median(values))}), so no per-token time was fitted for them")

    def predict_service_ms(self, inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """The fitted warm service time (ms) of requests of these lengths, without residual."""
        return self.service.predict({"input_tokens": inputs, "output_tokens": outputs})

    def draws(self, inputs: np.ndarray, outputs: np.ndarray, rng: np.random.Generator
              ) -> TokenDraws:
        """Service and first-token times for requests of these lengths: the prediction plus
        one measured request's residuals (warm), or one cold request's excess (cold)."""
        lengths = {"input_tokens": inputs, "output_tokens": outputs}
        base = self.service.predict(lengths)
        first_base = self.first.predict(lengths) if self.first is not None \
            else np.full(inputs.shape, np.nan)
        warm = self.rows.take(~self.rows.cold)
        k = rng.integers(0, self.n, size=inputs.size)
        warm_service = np.maximum(0.0, base + self.service.residuals[k])
        warm_residual = self._first_residuals(warm)[k]
        warm_first = first_base + warm_residual
        cold_rows = self.rows.take(self.rows.cold)
        if len(cold_rows):
            c = rng.integers(0, len(cold_rows), size=inputs.size)
            excess = cold_rows.held_ms - self.predict_service_ms(cold_rows.input,
                                                                 cold_rows.output)
            cold_service = np.maximum(0.0, base + excess[c])
            # no cold request was streamed: a warm one's first-token residual
            first_excess = self._first_residuals(cold_rows)[c]
            cold_first = first_base + np.where(np.isnan(first_excess), warm_residual,
                                               first_excess)
        else:
            cold_service, cold_first = warm_service, warm_first
        # the first token comes after reaching the instance and before the answer ends
        clip = lambda f, s: np.minimum(np.maximum(f, 0.0), s)
        return TokenDraws(inputs, outputs, warm_service, cold_service,
                          clip(warm_first, warm_service), clip(cold_first, cold_service))

    def _first_residuals(self, rows: TokenRows) -> np.ndarray:
        """Each row's first-token time less its prediction (NaN where not streamed)."""
        if self.first is None:
            return np.full(len(rows), np.nan)
        own = rows.first_ms - self.first.predict({"input_tokens": rows.input,
                                                  "output_tokens": rows.output})
        if not np.isnan(own).any() or np.isnan(own).all():
            return own
        known = own[~np.isnan(own)]  # a few not streamed: each takes a streamed one's residual
        fill = known[np.arange(int(np.isnan(own).sum())) % known.size]
        own = own.copy()
        own[np.isnan(own)] = fill
        return own

    def resample(self, rng: random.Random) -> TokenFit:
        """One bootstrap replicate: the measured requests drawn again with replacement and
        fitted again (this fit when the replicate cannot be fitted)."""
        n = len(self.rows)
        index = np.fromiter((int(rng.random() * n) for _ in range(n)), dtype=np.int64, count=n)
        again, _ = fit_tokens(self.rows.take(index), units=self.units)
        if again is None or any((getattr(again, a) is None) != (getattr(self, a) is None)
                                for a in ("prefill_ms_per_token", "decode_ms_per_token")):
            return self
        return again

    def describe(self) -> dict[str, Any]:
        """What run.yaml records of the fit (ms; None where not identified). Per-token keys
        say ``tok``: run.yaml masks a key with ``token`` as a word of its own as a credential."""
        s = self.service
        tpot = self.rows.tpot_ms[~self.rows.cold]
        tpot = tpot[np.isfinite(tpot)]
        out: dict[str, Any] = {
            "requests": self.n, "intercept_ms": _r(s.intercept),
            "prefill_ms_per_tok": _r(s.slopes["input_tokens"]),
            "prefill_ms_per_tok_se": _r(s.errors["input_tokens"]),
            "decode_ms_per_tok": _r(s.slopes["output_tokens"]),
            "decode_ms_per_tok_se": _r(s.errors["output_tokens"]),
            "r2": _r(s.r2, 4), "residual_sd_ms": _r(s.spread_ms),
            "measured_tpot_median_ms": _r(float(np.median(tpot))) if tpot.size else None,
            "cold_requests": int(self.rows.cold.sum()), "notes": list(self.notes),
            "server_per_generator": {k: round(v, 4) for k, v in self.units.items()} or None}
        if self.first is not None:
            f = self.first
            out["first_tok"] = {"requests": int(f.residuals.size),
                                  "intercept_ms": _r(f.intercept),
                                  "prefill_ms_per_tok": _r(f.slopes["input_tokens"]),
                                  "r2": _r(f.r2, 4), "residual_sd_ms": _r(f.spread_ms)}
        return out

    def text(self) -> str:
        """The fit in one sentence, as ``simulate --calibrate`` and ``cost --what-if`` print it."""
        d = self.describe()
        terms = [f"{d['intercept_ms']:.4g}"]
        for key, name in (("prefill", "input_tokens"), ("decode", "output_tokens")):
            v, se = d[f"{key}_ms_per_tok"], d[f"{key}_ms_per_tok_se"]
            if v is not None:
                terms.append(f"{v:.4g}" + (f" (±{se:.2g})" if se is not None else "") +
                             f" × {name}")
        r2 = "R² " + (f"{d['r2']:.3f}" if d["r2"] is not None else "-")
        line = (f"token fit on {d['requests']} warm requests: service ms = {' + '.join(terms)}"
                f" ({r2}, residual sd {d['residual_sd_ms']:.3g} ms)")
        first = d.get("first_tok")
        if first:
            slope = first["prefill_ms_per_tok"]
            line += (f"; first token (TTFT less queueing) ms = {first['intercept_ms']:.4g}"
                     + (f" + {slope:.4g} × input_tokens" if slope is not None else "")
                     + (f" (R² {first['r2']:.3f})" if first["r2"] is not None else ""))
        if d["measured_tpot_median_ms"] is not None and d["decode_ms_per_tok"] is not None:
            line += f"; measured warm TPOT median {d['measured_tpot_median_ms']:.4g} ms"
        return line + "".join(f"; {n}" for n in self.notes)


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def fit_tokens(rows: TokenRows, *, units: dict[str, float] | None = None
               ) -> tuple[TokenFit | None, str]:
    """The fit over `rows`' warm requests, and a sentence: the fit (`TokenFit.text`) or why
    there is none (then the calibration resamples plain service times)."""
    warm = rows.take(~rows.cold)
    if len(warm) < MIN_REQUESTS:
        return None, (f"no token fit: {len(warm)} warm request(s) carry token counts, "
                      f"{MIN_REQUESTS} are needed; service times are resampled as measured")
    lengths = {"input_tokens": warm.input, "output_tokens": warm.output}
    service = _least_squares(warm.held_ms, lengths)
    if isinstance(service, str):
        return None, f"no token fit: {service}; service times are resampled as measured"
    if all(v is None for v in service.slopes.values()):
        return None, (f"no token fit: every request had the same lengths ({int(warm.input[0])}"
                      f" input, {int(warm.output[0])} output tokens); service times are "
                      "resampled as measured")
    notes = [f"{name} did not vary (all {int(np.median(values))}): no per-token time for "
             "them, they are in the intercept"
             for name, values in lengths.items() if service.slopes[name] is None]
    notes += _weak(service)
    first = None
    streamed = ~np.isnan(warm.first_ms)
    if streamed.sum() >= MIN_REQUESTS:
        got = _least_squares(warm.first_ms[streamed],
                             {"input_tokens": warm.input[streamed]})
        first = got if isinstance(got, _Linear) else None
    fit = TokenFit(rows, service, first, tuple(notes), dict(units or {}))
    return fit, fit.text()


def _weak(fit: _Linear) -> list[str]:
    """Sentences for a fit the run's noise leaves loose: a per-token time within two standard
    errors of 0, lengths that explain under half the variance. Such a fit is kept (at 1x it
    still resamples the measured spread) and its looseness reaches every interval, since each
    bootstrap replicate fits again."""
    out = [f"the {name} time ({slope:.3g} ± {se:.2g} ms a token) is not told apart from 0 at "
           "95 %" for name, slope, se in ((k, fit.slopes[k], fit.errors[k]) for k in fit.slopes)
           if slope is not None and se is not None and abs(slope) < 2 * se]
    if fit.r2 is not None and fit.r2 < 0.5:
        out.append(f"the lengths explain {fit.r2:.0%} of the service time's variance (the "
                   "rest is noise: a what-if that scales lengths has wide intervals; measure "
                   "more requests, or on a quieter machine)")
    return out


def drawn_means(config: dict[str, Any] | None, n: int) -> tuple[float, float] | None:
    """The mean prompt tokens and max_tokens a run's generator (its recorded ``request.openai``,
    `RequestGenerator.to_dict`) drew for its requests 0..n-1; None without one, or when it
    cannot be rebuilt (a dataset file gone)."""
    if not config or n <= 0:
        return None
    try:
        inputs, outputs = _generated(json.dumps(config, sort_keys=True), n)
    except Exception:  # noqa: BLE001 - a recorded generator that cannot be rebuilt: no bridge
        return None
    return float(inputs.mean()), float(outputs.mean())


# -- the simulated requests' lengths -----------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _generated(config_json: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Requests 0..n-1 of a workload's generator: (prompt tokens, max_tokens), made once per
    generator and count (every bootstrap replication replays the same traffic)."""
    from ..load.openai_requests import RequestGenerator

    gen = RequestGenerator.from_dict(json.loads(config_json))
    inputs, outputs = np.empty(n), np.empty(n)
    for i in range(n):
        drawn = gen.draw(i)
        inputs[i], outputs[i] = drawn.prompt_tokens, drawn.max_tokens
    return inputs, outputs


def lengths_for(workload: Any, fit: TokenFit, n: int, *, seed: int
                ) -> tuple[np.ndarray, np.ndarray, str]:
    """The lengths of `workload`'s requests 0..n-1 (input, output tokens) and where they came
    from: its ``request.openai`` generator (request n's prompt tokens and max_tokens, as the
    run sends them), else the calibration run's measured pairs resampled (seeded by `seed`)."""
    from ..load.openai_requests import request_generator

    gen = request_generator(workload) if getattr(workload.request, "openai", None) else None
    if gen is not None:
        inputs, outputs = _generated(json.dumps(gen.to_dict(), sort_keys=True), n)
        if not fit.units:
            return inputs, outputs, ("the workload's request.openai (prompt tokens, "
                                     "max_tokens), taken as the server's tokens (the "
                                     "calibration run recorded no generator to compare with)")
        kin, kout = fit.units.get("input_tokens", 1.0), fit.units.get("output_tokens", 1.0)
        source = (f"the workload's request.openai, in the server's tokens: prompt tokens × "
                  f"{kin:.4g}, max_tokens × {kout:.4g} (the calibration run's measured counts "
                  "over what its generator drew)")
        return scaled(inputs, kin), scaled(outputs, kout), source
    rng = np.random.default_rng(np.random.SeedSequence([abs(int(seed)), 0x70C]))
    pick = rng.integers(0, len(fit.rows), size=n)
    return (fit.rows.input[pick], fit.rows.output[pick],
            "the calibration run's measured (input, output) pairs, resampled")


def scaled(values: np.ndarray, factor: float) -> np.ndarray:
    """Token counts × `factor`, whole and at least 1."""
    return values if factor == 1.0 else np.maximum(1.0, np.round(values * factor))

