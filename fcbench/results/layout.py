"""The names of a run folder's files: the one place any of them is spelled.

Key names: `RUN_YAML`, `SUMMARY`, `REQUESTS`, `INSTANCES`, `PHASES`, `SWEEP`, `REPORT`,
`RUN_FILES`, `KIND_KEY`, `FILE_NAMES`. Every other module names a file through these, so a
folder written by one command is the folder every other command reads.
"""

from __future__ import annotations

__all__ = [
    "COMPARE_CSV", "COMPARE_HTML", "CONFIG_DIFF", "FILE_NAMES", "GPU", "HELDOUT", "INSTANCES",
    "KIND_KEY", "KINDS", "LOCUST_HTML", "LOCUST_LOG", "LOGS", "OLD_KIND_KEY", "PHASES", "PLOTS",
    "PREDICTED", "PREDICTION", "REPORT", "REQUESTS", "REQUEST_PARTS", "RUN_FILES", "RUN_YAML",
    "SUMMARY", "SWEEP", "WHATIF_GLOB", "WHATIF_PREFIX", "request_part", "whatif_name",
]

#: How the run was set up (the workload, options, host), secrets masked; its kind under `KIND_KEY`.
RUN_YAML = "run.yaml"
#: The figures of the run (`fcbench.results.summary.summarize`, or a profile's or sweep's own).
SUMMARY = "summary.json"
#: One row per request sent (`fcbench.protocol.ALL_COLUMNS`).
REQUESTS = "requests.csv"
#: Glob of the per-process part files merged into `REQUESTS` when a run ends.
REQUEST_PARTS = "requests.part-*.csv"
#: One row per instance the platform started (lifecycle and metering).
INSTANCES = "instances.csv"
#: One row per forced cold start of a profile, its phases in ms.
PHASES = "phases.csv"
#: One row per level of a cold-start sweep; `PREDICTED`: the simulator's rows for them.
SWEEP = "sweep.csv"
PREDICTED = "predicted.csv"
#: A simulation's prediction intervals; `HELDOUT`: calibrated-on-half checks.
PREDICTION = "prediction.json"
HELDOUT = "heldout.csv"
#: GPU telemetry of a measured run.
GPU = "gpu.csv"
#: The self-contained HTML report of a run; `COMPARE_HTML` of a comparison.
REPORT = "report.html"
COMPARE_HTML = "compare.html"
#: A comparison's figures (long format) and run.yaml differences.
COMPARE_CSV = "compare.csv"
CONFIG_DIFF = "config-diff.csv"
#: Locust's own report and log of a measured run.
LOCUST_HTML = "locust.html"
LOCUST_LOG = "locust.log"
#: Folders: the PNGs the report embeds, the instances' logs.
PLOTS = "plots"
LOGS = "logs"
#: Priced what-ifs, one file per `fcbench cost --what-if`.
WHATIF_PREFIX = "whatif-"
WHATIF_GLOB = WHATIF_PREFIX + "*.csv"

#: One row per async task of a run (``request.invocationType: Async``), its end state.
TASKS = "tasks.csv"
__all__ += ["TASKS"]

#: A cold-start roofline: one row per phase and floor; the machine's limits it used.
ROOFLINE = "roofline.csv"
LIMITS = "limits.json"
__all__ += ["LIMITS", "ROOFLINE"]
#: A size sweep (`fcbench coldstart profile --model-size/--image-size`): one row per size
#: (`SIZES`), the per-phase fit over them (`FIT`), each size's own profile under `SIZES_DIR`.
SIZES = "sizes.csv"
FIT = "fit.json"
SIZES_DIR = "sizes"
__all__ += ["FIT", "SIZES", "SIZES_DIR", "size_dir"]

#: Any of these makes a folder a run folder.
RUN_FILES = (RUN_YAML, SUMMARY, REQUESTS, PHASES, SWEEP)
#: Every file name above (the test that no other module spells one reads this).
FILE_NAMES = (RUN_YAML, SUMMARY, REQUESTS, INSTANCES, PHASES, SWEEP, PREDICTED, PREDICTION,
              HELDOUT, GPU, REPORT, COMPARE_HTML, COMPARE_CSV, CONFIG_DIFF, LOCUST_HTML,
              LOCUST_LOG) + (TASKS, ROOFLINE, LIMITS, SIZES, FIT)

#: The run.yaml key a folder's kind is written under; `OLD_KIND_KEY`: where profiles and
#: sweeps wrote it before (still read).
KIND_KEY = "kind"
OLD_KIND_KEY = "experiment"
#: The kinds of run folder.
KINDS = ("run", "simulated", "coldstart-profile", "coldstart-sweep", "compare",
         "coldstart-sizes")


def request_part(index: int | str) -> str:
    """The part file one load process writes its requests to."""
    return f"requests.part-{index}.csv"


def whatif_name(stamp: str) -> str:
    """The file a `fcbench cost --what-if` made at `stamp` writes."""
    return f"{WHATIF_PREFIX}{stamp}.csv"


def size_dir(axis: str, size_mb: float) -> str:
    """The sub-folder (under `SIZES_DIR`) of one size's profile, e.g. ``model-256MB``."""
    return f"{axis}-{size_mb:g}MB"
