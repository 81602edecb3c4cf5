"""`fcbench coldstart profile SPEC --model-size ... / --image-size ...`: one profile per size,
then every phase fitted against size (`sizefit`).

Key names: `profile_sizes` (the sweep into one run folder), `SizePoint`, `size_table`. Model
size pads the built-in mobilenet-v2 file (``FCBENCH_MODEL_SIZE_MB``, `fcbench.models.mobilenet_v2`)
so the unchanged loading path reads that many bytes; image size adds one layer of seeded random
bytes on top of the spec's image (`fcbench.images.build.padded_image`), pulled from its registry
before every cold start (``--pull``). Each size's profile is its own run folder under the sweep's
``sizes/``; the sweep writes sizes.csv, fit.json, summary.json and run.yaml.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..results import RunFolder, host_info, layout
from ..spec import load_function_spec
from ..tables import column_lines
from .profile import ProfileResult, Sample
from .sizefit import TOTALS, Axis, Prediction, SizeFit, fit_sizes

__all__ = ["SizePoint", "fit_table", "profile_sizes"]

#: sizes.csv's columns: the axis and size, the cold starts kept, medians (ms) of e2e and the
#: phases that carry size, and the size's own run folder (relative to the sweep's).
SIZE_COLUMNS = ("axis", "size_MB", "kept", "e2e_ms", "model_load_ms", "image_pull_ms",
                "run_dir")
#: The phases the table shows first (where size shows); the rest follow in phase order.
#: The table shows a phase's implied bandwidth only where size explains this much of it (R²).
_BANDWIDTH_R2 = 0.5
_LEADING = ("model_load", "image_pull", "runtime_boot", "startup", "e2e")


@dataclass
class SizePoint:
    """One size's profile: where it is and what it kept."""

    size_mb: float
    run_dir: Path
    result: ProfileResult


#: The sample models that can be padded to a size, and the option that does it.
MODEL_SIZE_OPTIONS = {"mobilenet-v2": "FCBENCH_MODEL_SIZE_MB", "llm": "FCBENCH_LLM_SIZE_MB"}


def _check(spec: Any, axis: Axis, runtime: str, pull: bool) -> None:
    env = spec.environment_variables
    if axis == "model":
        model = env.get("FCBENCH_MODEL", "mobilenet-v2")
        own = env.get("FCBENCH_MODEL_PATH") or env.get("FCBENCH_LLM_PATH")
        if model not in MODEL_SIZE_OPTIONS or own:
            raise UsageError("--model-size pads a built-in sample model ("
                             + ", ".join(f"{m}: {o}" for m, o in MODEL_SIZE_OPTIONS.items())
                             + f"); this spec serves {own or model!r}: use such a spec without "
                             "a model path, e.g. workloads/functions/mobilenet-v2-quickstart.yaml")
        if runtime != "process":
            raise UsageError("--model-size needs the process runtime (an image holds its own "
                             "model file; vary the image with --image-size instead)")
        if pull:
            raise UsageError("--pull times an image pull, and --model-size runs on the process "
                             "runtime, which pulls nothing: drop --pull, or vary --image-size")
    elif runtime != "docker":
        raise UsageError("--image-size needs the docker runtime (harness.runtime: docker or "
                         "--runtime docker), e.g. workloads/functions/mobilenet-v2-docker.yaml")
    elif not spec.custom_container_config.image:
        raise UsageError("--image-size pads the spec's customContainerConfig.image; this spec "
                         "names none")


def profile_sizes(spec_path: str | Path, axis: Axis, sizes_mb: Sequence[float], *,
                  repeats: int, warmup: int, pull: bool, body: bytes, content_type: str,
                  force: str = "reclaim", virtual_gpus: str | None = None,
                  runtime: str | None = None, out: Path = Path("results"),
                  on_sample: Callable[[Sample], None] | None = None,
                  on_size: Callable[[float], None] | None = None,
                  gpu_plan: Any = None) -> tuple[Path, SizeFit | None, list[SizePoint]]:
    """Profile SPEC at every size along `axis` and fit each phase against size (None: one
    size, its profile only, e.g. to check a prediction).

    Raises:
        UsageError: the spec or runtime cannot vary that size (before any folder is made), or
            a size kept no cold start to fit.
    """
    from ..results.rundir import new_run_dir
    from .session import profile_spec

    spec = load_function_spec(spec_path)
    runtime = runtime or spec.harness.runtime
    _check(spec, axis, runtime, pull)
    sizes = sorted({float(s) for s in sizes_mb})  # one size: its profile, nothing to fit
    if axis == "model":
        whole = [s for s in sizes if s != int(s)]
        if whole:
            raise UsageError(f"model sizes are whole MB; got {', '.join(f'{s:g}MB' for s in whole)}")
    run_dir = new_run_dir(Path(out), f"sizes-{spec.name}").resolve()
    (run_dir / layout.SIZES_DIR).mkdir()
    points: list[SizePoint] = []
    for size in sizes:
        if on_size is not None:
            on_size(size)
        env, image = None, None
        if axis == "model":
            model = spec.environment_variables.get("FCBENCH_MODEL", "mobilenet-v2")
            env = {MODEL_SIZE_OPTIONS[model]: str(int(size))}
        else:
            from ..images.build import padded_image

            image = padded_image(spec.custom_container_config.image, size)
        sub = run_dir / layout.SIZES_DIR / layout.size_dir(axis, size)
        sub.mkdir()
        _, result = profile_spec(spec_path, repeats=repeats, warmup=warmup, pull=pull, body=body,
                                 content_type=content_type, force=force,
                                 virtual_gpus=virtual_gpus, runtime=runtime, out=out,
                                 on_sample=on_sample, gpu_plan=gpu_plan, environment=env,
                                 image=image, run_dir=sub)
        if not result.kept:
            raise UsageError(f"the {size:g} MB profile kept no cold start "
                             f"({', '.join(f'{v} {k}' for k, v in result.counts.items() if v)});"
                             f" see {sub}")
        points.append(SizePoint(size, sub, result))
    fit = fit_sizes(((p.size_mb, s.phases) for p in points for s in p.result.kept),
                    axis=axis, phase_names=points[0].result.phase_names) \
        if len(points) > 1 else None
    _write(run_dir, spec_path, spec, axis, runtime, points, fit,
           {"repeats": repeats, "warmup": warmup, "pull": pull, "force": force,
            "virtual_gpus": virtual_gpus})
    return run_dir, fit, points


def _median(result: ProfileResult, name: str) -> float | None:
    values = [s.phases.get(name) for s in result.kept] if name != "e2e" else \
        [s.e2e_ms for s in result.kept]
    known = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return round(statistics.median(known), 3) if known else None


def _write(run_dir: Path, spec_path: str | Path, spec: Any, axis: Axis, runtime: str,
           points: list[SizePoint], fit: SizeFit | None, options: dict[str, Any]) -> None:
    import json

    from .._io import atomic_write

    folder = RunFolder(run_dir)
    rows = [{"axis": axis, "size_MB": p.size_mb, "kept": len(p.result.kept),
             "e2e_ms": _median(p.result, "e2e"), "model_load_ms": _median(p.result, "model_load"),
             "image_pull_ms": _median(p.result, "image_pull"),
             "run_dir": str(p.run_dir.relative_to(run_dir))} for p in points]
    folder.write_csv(layout.SIZES, SIZE_COLUMNS, rows)
    if fit is not None:
        atomic_write(folder.file(layout.FIT),
                     (json.dumps(fit.to_doc(), indent=2) + "\n").encode())
    folder.finish(summary={"axis": axis, "sizes_MB": [p.size_mb for p in points],
                           "sizes": rows, "fit": None if fit is None else fit.to_doc()},
                  config={"title": f"Cold start vs {axis} size: {spec.name} ({runtime} runtime)",
                          "spec_file": str(spec_path), "axis": axis,
                          "sizes_MB": [p.size_mb for p in points], "runtime": runtime,
                          **options, "host": host_info()},
                  kind="coldstart-sizes")


def fit_table(fit: SizeFit) -> str:
    """The fit, one row per phase that was measured: intercept, slope, R², bandwidth."""
    names = [n for n in _LEADING if n in fit.phases] + \
        [n for n in fit.phases if n not in _LEADING]
    rows = []
    for name in names:
        f = fit.phases[name]
        if f.r2 is None and f.intercept_ms == 0 and f.ms_per_mb == 0:
            continue  # a phase this runtime or spec does not have (always 0)
        # a bandwidth only where size explains the phase: a flat, noisy phase's slope is noise
        shown = f.mb_per_s is not None and f.r2 is not None and f.r2 >= _BANDWIDTH_R2
        rows.append([name, f"{f.intercept_ms:.1f}", f"{f.ms_per_mb:.4f}",
                     "-" if f.r2 is None else f"{f.r2:.3f}",
                     f"{f.mb_per_s:.0f}" if shown else "-", f"{f.residual_sd_ms:.1f}"])
    sizes = ", ".join(f"{s:g}" for s in fit.sizes_mb)
    return (f"fit along {fit.axis} size ({sizes} MB): ms = intercept + ms/MB × MB\n"
            + "\n".join(column_lines(["phase", "intercept ms", "ms/MB", "R²", "MB/s",
                                      "resid sd ms"], rows, align="first-left")))


__all__ += ["prediction_lines"]


def _platform_means(platform: Any) -> dict[str, float]:
    """The mean of each platform phase a spec's `harness.platform` names (ms)."""
    if platform is None:
        return {}
    out = {}
    if platform.gpu_prepare_dist is not None:
        out["gpu_prepare"] = platform.gpu_prepare_dist.mean_ms
    if platform.image_pull_ms is not None:
        out["platform_image_pull"] = platform.image_pull_ms
    if platform.extra_start_dist is not None:
        out["platform_extra"] = platform.extra_start_dist.mean_ms
    return out


def prediction_lines(prediction: Prediction, *, platform: Any = None,
                     spec: str | None = None) -> list[str]:
    """The predicted cold start as text: each phase, the total, what lies outside the measured
    sizes and, with a spec's `harness.platform`, the same at FC's magnitudes."""
    from ..harness.platform_phases import PLATFORM_PHASES

    at = ", ".join(f"{a} {mb:g} MB" for a, mb in prediction.sizes_mb.items())
    lines = [f"predicted cold start on this machine at {at}:"]
    rows = [[name, f"{ms:.1f}"] for name, ms in prediction.phases_ms.items()
            if name not in TOTALS and name not in PLATFORM_PHASES and abs(ms) >= 0.05]
    rows += [["startup", f"{prediction.startup_ms:.1f}"], ["e2e", f"{prediction.e2e_ms:.1f}"]]
    lines += ["  " + x for x in column_lines(["phase", "ms"], rows, align="first-left")]
    for axis in prediction.extrapolated:
        lo, hi = prediction.measured_mb[axis]
        lines.append(f"note: {axis} size {prediction.sizes_mb[axis]:g} MB is outside the "
                     f"measured {lo:g}–{hi:g} MB: extrapolated, the line assumed to hold")
    means = _platform_means(platform)
    if spec is not None and not means:
        lines.append(f"{spec} names no harness.platform phases: FC's magnitudes are not known "
                     "from it")
    elif means:
        fc = prediction.e2e_ms + sum(means.values())
        parts = ", ".join(f"{k} {v:.0f} ms" for k, v in means.items())
        lines.append(f"at FC's magnitudes ({spec}: harness.platform means {parts}): "
                     f"cold start {fc:.0f} ms (e2e {prediction.e2e_ms:.0f} ms + platform "
                     f"{sum(means.values()):.0f} ms)")
    return lines
