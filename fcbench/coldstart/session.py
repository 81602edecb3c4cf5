"""Running a cold-start profile end to end: run folder, target set-up, experiment, outputs.

Key names: `profile_spec` (start a local harness for a spec), `profile_endpoint` (a running URL),
`profile_target` (any open target, e.g. FC through the SDK).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..results import RunFolder, host_info, new_run_dir
from ..spec import load_function_spec, masked_environment
from ..targets.base import ColdStartMethod
from .profile import ColdStartProfile, ProfileConfig, ProfileResult, Sample, write_outputs

__all__ = ["profile_endpoint", "profile_spec", "profile_target", "sweep_spec"]


def profile_spec(spec_path: str | Path, *, repeats: int, warmup: int, pull: bool, body: bytes,
                 content_type: str, force: str = "target", virtual_gpus: str | None = None,
                 runtime: str | None = None, out: Path = Path("results"),
                 on_sample: Callable[[Sample], None] | None = None,
                 gpu_plan: Any = None, roofline: bool = False,
                 environment: dict[str, str] | None = None, image: str | None = None,
                 run_dir: Path | None = None) -> tuple[Path, ProfileResult]:
    """Profile cold starts of one spec on a local harness started for the purpose; `gpu_plan`
    (`fcbench.harness.gpuplan.plan_gpus`, when the command planned the GPUs) is handed to it.
    With `roofline`, the machine's limits are measured after the cold starts, the same request
    repeated warm on the same harness first (`fcbench.coldstart.roofline`). `environment`
    (added to the spec's environmentVariables) and `image` (instead of its
    customContainerConfig.image) vary the spec, as a size sweep does; `run_dir`: write there
    (an empty folder) instead of a new one under `out`."""
    from ..harness.server import HarnessConfig
    from ..targets.local import LocalTarget

    spec = _varied(load_function_spec(spec_path), environment, image)
    if roofline:
        from .limits import model_files

        model_files(spec)  # a missing model path is an error before anything starts
    if run_dir is None:
        run_dir = new_run_dir(Path(out), f"coldstart-{spec.name}")
    config = HarnessConfig(port=0, runtime=runtime, virtual_gpus=virtual_gpus,
                           log_dir=run_dir / "logs", gpu_plan=gpu_plan)
    with LocalTarget([spec], config=config, timeout=spec.timeout + 60) as target:
        before = _PullHook(target, spec) if pull else None
        experiment = ColdStartProfile(
            target, ProfileConfig(repeats=repeats, warmup=warmup, force=force, body=body,
                                  content_type=content_type, timeout=spec.timeout + 60),
            before_cold=before, on_sample=on_sample)
        experiment.prepare()
        try:
            result = experiment.process(experiment.run())
        finally:
            if before is not None:
                before.restore()
        gpus = target.harness.harness.gpu_info
        warm = _warm_inference(target, body, content_type, spec.timeout + 60) \
            if roofline and result.kept else ()
    used = runtime or spec.harness.runtime
    if roofline and result.kept:
        from .limits import LimitPlan, measure_limits
        from .roofline import Roofline

        limits = measure_limits(LimitPlan(spec, used, pull, warm, gpu=spec.gpu_memory_mb > 0))
        result.roofline = Roofline.of(result, limits, runtime=used, pull=pull)
    write_outputs(result, run_dir, title=f"Cold-start profile: {spec.name} "
                  f"({runtime or spec.harness.runtime} runtime)", config={
                      "spec_file": str(spec_path),
                      "function": {**spec.to_fc(), "environmentVariables":
                                   masked_environment(spec)},
                      "harness": spec.harness.model_dump(by_alias=True),
                      "runtime": runtime or spec.harness.runtime, "repeats": repeats,
                      "warmup": warmup, "pull": pull, "force": force,
                      "virtual_gpus": virtual_gpus, "gpus": gpus, "host": host_info(),
                      **({"roofline": True} if roofline else {})})
    return run_dir, result


#: How often the roofline repeats the request on a warm instance (its first_inference floor).
WARM_REPEATS = 5


def _warm_inference(target: Any, body: bytes, content_type: str, timeout: float
                    ) -> tuple[float | None, ...]:
    """The instance's own inference time of the same request, repeated warm."""
    out = []
    for _ in range(WARM_REPEATS):
        record = target.invoke(body, content_type, timeout)
        out.append(record.inference_ms if record.ok and not record.cold else None)
    return tuple(out)


def _varied(spec: Any, environment: dict[str, str] | None, image: str | None) -> Any:
    """`spec` with more environment variables and another image (None: as it is)."""
    update: dict[str, Any] = {}
    if environment:
        update["environment_variables"] = {**spec.environment_variables, **environment}
    if image is not None:
        update["custom_container_config"] = spec.custom_container_config.model_copy(
            update={"image": image})
    return spec.model_copy(update=update) if update else spec


class _PullHook:
    """Before each cold start (instances already reclaimed), remove the function's image so the
    next start pulls it from its registry; `restore` gives back, at the end, the other tags the
    first removal took (``fcbench/mobilenet-v2:latest`` beside the registry's name), so a
    profile leaves the machine's images as it found them."""

    def __init__(self, target: Any, spec: Any) -> None:
        self.harness = target.harness
        self.runtime = self.harness.harness.platform.runtimes.get("docker")
        self.image = spec.custom_container_config.image
        if self.runtime is None or not self.image:
            raise UsageError("a real image pull needs the docker runtime (harness.runtime: "
                             "docker) and customContainerConfig.image in a registry, e.g. "
                             "127.0.0.1:5000/fcbench/mobilenet-v2:latest")
        self.first: Any = None

    def __call__(self) -> None:
        removed = self.harness.call(self.runtime.remove_image(self.image))
        if self.first is None:
            self.first = removed

    def restore(self) -> None:
        if self.first is not None:
            self.harness.call(self.runtime.restore_tags(self.first))


def profile_endpoint(url: str, function: str | None, *, repeats: int, warmup: int, body: bytes,
                     content_type: str, force: str | None = None, out: Path = Path("results"),
                     on_sample: Callable[[Sample], None] | None = None
                     ) -> tuple[Path, ProfileResult]:
    """Profile a running endpoint. Where the harness API answers next to it (directly or
    through a proxy) phases come from the harness timeline, as for a spec; elsewhere (FC, any
    black-box URL) from the instance's headers, `platform` being the unexplained rest.

    With `function`, `url` is an FC 3.0-compatible base URL; otherwise requests go to `url`.
    """
    from ..targets.url import UrlTarget

    wait = float(force.split(":", 1)[1]) if force and force.startswith("wait:") else None
    with UrlTarget(url, function=function, idle_wait_s=wait) as target:
        if force is None:
            force = "target" if target.cold_start_method is ColdStartMethod.RECLAIM \
                else "wait:360"
        run_dir = new_run_dir(Path(out), f"coldstart-{function or 'url'}")
        experiment = ColdStartProfile(
            target, ProfileConfig(repeats=repeats, warmup=warmup, force=force, body=body,
                                  content_type=content_type),
            on_sample=on_sample)
        experiment.prepare()
        result = experiment.process(experiment.run())
    write_outputs(result, run_dir, title=f"Cold-start profile: {function or url} "
                  f"({result.mode} phases)",
                  config={"url": url, "function": function,
                          "repeats": repeats, "warmup": warmup, "force": force,
                          "phases_from": result.mode, "host": host_info()})
    return run_dir, result


def sweep_spec(spec_path: str | Path, config: Any, *, body: bytes, content_type: str,
               out: Path = Path("results"),
               on_level: Callable[[Any], None] | None = None,
               predict: bool = False, target: Any = None) -> tuple[Path, dict[str, Any]]:
    """Run a cold-start probability sweep of one spec; returns the run folder and summary.
    With `predict`, the simulator, calibrated on the measured levels, runs the same levels and
    its curve is laid over the measured one (predicted.csv, ``predicted`` in the summary).
    With `target` (a url or fc target config) the levels run against it, each after its
    force_cold(), instead of a fresh local harness serving the spec."""

    from ..report.html import write_report
    from .sweep import ColdStartSweep, new_sweep_dir

    spec = load_function_spec(spec_path)
    run_dir = new_sweep_dir(out, f"sweep-{spec.name}")
    experiment = ColdStartSweep(spec, config, run_dir, body=body, content_type=content_type,
                                on_level=on_level)
    experiment.target_config = target
    service_ms = experiment.prepare()
    folder = RunFolder(run_dir)
    folder.write_run_yaml(kind=experiment.name, doc={
        "title": f"Cold-start probability vs {config.vary}: {spec.name}",
        "spec_file": str(spec_path),
        "function": {**spec.to_fc(), "environmentVariables": masked_environment(spec)},
        "harness": spec.harness.model_dump(by_alias=True),
        "levels": list(config.levels), "vary": config.vary, "mode": config.mode,
        "duration_s": experiment.timing.level_s, "duration_s_asked": config.duration_s,
        "warmup_s": experiment.timing.warmup_s, "steady_multiple": config.steady_multiple,
        "steady": experiment.timing.steady, "timing": experiment.timing.note,
        "service_ms": service_ms,
        "service_ms_measured": config.service_ms is None, "think_s": config.think_s,
        "seed": config.seed, "target": target.model_dump(exclude_none=True, mode="json")
        if target is not None else {"kind": "local"}})
    levels = experiment.run()
    predicted = None
    if predict:
        from .predict import predict_sweep

        predicted, _ = predict_sweep(run_dir, levels, spec, config, service_ms=service_ms,
                                     seed=config.seed)
    summary = experiment.process(levels, predicted=predicted)  # sweep.csv, summary.json
    folder.finish(report=write_report)
    return run_dir, summary


def profile_target(target: Any, label: str, *, repeats: int, warmup: int, body: bytes,
                   content_type: str, force: str = "target", out: Path = Path("results"),
                   describe: dict[str, Any] | None = None,
                   on_sample: Callable[[Sample], None] | None = None
                   ) -> tuple[Path, ProfileResult]:
    """Profile an open `Target` (FC through the SDK: `force` ``target`` updates the function
    before each cold start); phases from the instance's headers unless the target lends a
    harness timeline. `describe` (the target, never credentials) goes into run.yaml.

    Raises:
        UsageError: the target cannot force cold starts the way `force` asks (before any
            folder is made).
    """
    experiment = ColdStartProfile(
        target, ProfileConfig(repeats=repeats, warmup=warmup, force=force, body=body,
                              content_type=content_type, timeout=getattr(target, "timeout", 600)),
        on_sample=on_sample)
    experiment.prepare()
    run_dir = new_run_dir(Path(out), f"coldstart-{label}")
    result = experiment.process(experiment.run())
    write_outputs(result, run_dir, title=f"Cold-start profile: {label} ({result.mode} phases)",
                  config={"target": describe or {},
                          "repeats": repeats, "warmup": warmup, "force": force,
                          "cold_start_method": target.cold_start_method.value,
                          "phases_from": result.mode, "host": host_info()})
    return run_dir, result
