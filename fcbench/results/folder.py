"""A run folder as one typed format: every kind (a measured or simulated run, a cold-start
profile or sweep, a comparison) read and written by one class.

Key names: `RunFolder` (where each file is, reading it once, writing it atomically, `finish`),
`PhaseRow`. File names: `fcbench.results.layout`. A `RunFolder` keeps what it read until it
writes that file, so a command that hands one folder object around reads each file once.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import atomic_write
from ..errors import UsageError
from ..secrets import mask_secrets
from . import layout
from .rundir import host_info, new_run_dir

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LIFECYCLE", "NOT_PHASES", "REQUEST_EXTRAS", "PhaseRow", "RunFolder"]

log = logging.getLogger(__name__)

#: requests.csv columns beyond the summary's that some reader wants (calibration: what the
#: gateway held; metering: when the instance was ready); always loaded, so one read serves all.
REQUEST_EXTRAS = ("queue_ms", "forward_ms", "ready_ts")
#: phases.csv columns that are not phases although they end in ``_ms``.
NOT_PHASES = frozenset({"e2e_ms", "warm_ms", "cold_penalty_ms"})
_MISSING = object()


@dataclass(frozen=True)
class PhaseRow:
    """One sample of a profile's phases.csv (a `fcbench.measures.PhaseSample` when kept)."""

    index: int
    kind: str
    status: int
    e2e_ms: float
    warm_ms: float | None
    instance_id: str
    phases: dict[str, float | None] = field(default_factory=dict)


def _num(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


class RunFolder:
    """A run folder: where each file is, reading it (once) and writing it (atomically, secrets
    masked in run.yaml, host and versions recorded), and `finish` — the one order every kind of
    folder is completed in.

    >>> folder = RunFolder.create("results", "coldstart-f")
    >>> folder.write_run_yaml({"title": "..."}, kind="coldstart-profile")
    >>> RunFolder("results/20261201-120000-quickstart").summary()["count"]
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cache: dict[tuple[str, str], Any] = {}

    @classmethod
    def create(cls, parent: str | Path, name: str) -> RunFolder:
        """A fresh folder (see `new_run_dir`): never an existing one."""
        return cls(new_run_dir(parent, name))

    @classmethod
    def of(cls, folder: str | Path | RunFolder) -> RunFolder:
        """`folder` itself when it is a RunFolder (its reads are shared), else one for the path."""
        return folder if isinstance(folder, RunFolder) else cls(folder)

    @classmethod
    def open(cls, folder: str | Path | RunFolder) -> RunFolder:
        """`of`, checked to be a run folder.

        Raises:
            UsageError: it is not a folder, or holds none of `layout.RUN_FILES`.
        """
        out = cls.of(folder)
        if not out.is_run_folder():
            raise UsageError(f"{out.path} is not a fcbench run folder: it holds none of "
                             f"{', '.join(layout.RUN_FILES)}")
        return out

    # -- where -------------------------------------------------------------------------------

    def file(self, name: str) -> Path:
        """The path of the file `name` (a `layout` constant) in this folder."""
        return self.path / name

    def has(self, name: str) -> bool:
        """Whether the folder holds the file `name`."""
        return (self.path / name).is_file()

    def is_run_folder(self) -> bool:
        """A folder holding any of `layout.RUN_FILES`."""
        return self.path.is_dir() and any(self.has(n) for n in layout.RUN_FILES)

    @property
    def plots(self) -> Path:
        """The plots folder (not made here)."""
        return self.path / layout.PLOTS

    # -- reading (each file once) ------------------------------------------------------------

    def _once(self, name: str, what: str, read: Callable[[], Any]) -> Any:
        """`read()` the first time `what` of the file `name` is asked for, then kept."""
        key = (name, what)
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            value = self._cache[key] = read()
        return value

    def _forget(self, name: str) -> None:
        """Drop what was read of the file `name` (it was just written)."""
        for key in [k for k in self._cache if k[0] == name]:
            del self._cache[key]

    def text(self, name: str) -> str | None:
        """The text of the file `name`, None when absent."""
        def read() -> str | None:
            path = self.path / name
            return path.read_text(encoding="utf-8") if path.is_file() else None
        return self._once(name, "text", read)

    def config_text(self) -> str:
        """run.yaml as written ("" when there is none)."""
        return self.text(layout.RUN_YAML) or ""

    def config(self) -> dict[str, Any]:
        """run.yaml as a mapping; {} when absent or unreadable (a reader that needs it to
        parse calls `config_located`)."""
        def read() -> dict[str, Any]:
            import yaml

            try:
                doc = yaml.safe_load(self.config_text())
            except yaml.YAMLError:
                return {}
            return doc if isinstance(doc, dict) else {}
        return self._once(layout.RUN_YAML, "mapping", read)

    def config_located(self) -> tuple[dict[str, Any], dict[tuple, int]]:
        """run.yaml with secrets masked, and the line each key is set on.

        Raises:
            UsageError: it is not a mapping. SpecError: it does not parse (file:line).
        """
        def read() -> tuple[dict[str, Any], dict[tuple, int]]:
            from .._yaml import load_located

            path = self.path / layout.RUN_YAML
            if not path.is_file():
                return {}, {}
            doc = load_located(path)
            if doc.data is None:
                return {}, {}
            if not isinstance(doc.data, dict):
                raise UsageError(f"{path}:1: run.yaml is not a mapping; was it written by "
                                 "fcbench?")
            return mask_secrets(doc.data), dict(doc.lines)
        return self._once(layout.RUN_YAML, "located", read)

    def summary(self) -> dict[str, Any]:
        """summary.json ({} when there is none).

        Raises:
            UsageError: it is not valid JSON or not an object (file:line).
        """
        def read() -> dict[str, Any]:
            text = self.text(layout.SUMMARY)
            if text is None:
                return {}
            path = self.path / layout.SUMMARY
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); rebuild it "
                                 f"or remove it so it is recomputed from {layout.REQUESTS}"
                                 ) from None
            if not isinstance(data, dict):
                raise UsageError(f"{path}:1: summary.json is not a JSON object")
            return data
        return self._once(layout.SUMMARY, "mapping", read)

    def kind(self) -> str:
        """What made the folder: ``run``, ``simulated``, ``coldstart-profile``,
        ``coldstart-sweep``, ``compare``. Folders before the kind had one key say it as
        ``experiment`` (run.yaml or summary.json), or not at all: then the files tell."""
        config = self.config()
        kind = config.get(layout.KIND_KEY) or config.get(layout.OLD_KIND_KEY)
        if kind is None:
            kind = self.summary().get(layout.OLD_KIND_KEY)
        if kind is None and self.has(layout.PHASES):
            kind = "coldstart-profile"
        return str(kind or "run")

    def requests(self) -> pd.DataFrame | None:
        """requests.csv (the summary's columns and `REQUEST_EXTRAS`), None when absent."""
        def read() -> pd.DataFrame | None:
            from .summary import load_requests

            path = self.path / layout.REQUESTS
            return load_requests(path, extra=REQUEST_EXTRAS) if path.is_file() else None
        return self._once(layout.REQUESTS, "frame", read)

    def instance_rows(self) -> list[dict[str, str]] | None:
        """instances.csv as rows of text, None when absent."""
        text = self.text(layout.INSTANCES)
        return None if text is None else list(csv.DictReader(io.StringIO(text, newline="")))

    def instances_started(self) -> int | None:
        """How many instances instances.csv lists (None: no such file)."""
        rows = self.instance_rows()
        return None if rows is None else len(rows)

    def instances(self) -> pd.DataFrame | None:
        """The lifecycle columns of instances.csv (`LIFECYCLE`, absent ones NaN), sorted by
        creation; None where there is no such file, an empty frame where it has no rows."""
        def read() -> pd.DataFrame | None:
            import numpy as np
            import pandas as pd

            text = self.text(layout.INSTANCES)
            if text is None:
                return None
            header = text.split("\n", 1)[0].strip().split(",")
            cols = [c for c in LIFECYCLE if c in header]
            if "instance_id" not in cols:
                return pd.DataFrame({c: pd.Series(dtype=object if c == "instance_id" else float)
                                     for c in LIFECYCLE})
            df = pd.read_csv(io.StringIO(text), usecols=cols,
                             dtype={c: object if c == "instance_id" else float for c in cols},
                             keep_default_na=False, na_values={c: [""] for c in cols[1:]})
            for c in LIFECYCLE:
                if c not in df:
                    df[c] = np.nan
            return df.sort_values("created_ts", kind="stable").reset_index(drop=True)
        return self._once(layout.INSTANCES, "frame", read)

    def phase_rows(self) -> tuple[list[str], list[dict[str, str]]] | None:
        """phases.csv: its columns and its rows of text, None when absent."""
        text = self.text(layout.PHASES)
        if text is None:
            return None
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        return list(reader.fieldnames or []), rows

    def phases(self) -> tuple[list[str], list[PhaseRow]] | None:
        """phases.csv as samples: the phase names (in the file's order) and one `PhaseRow`
        per sample; None when absent."""
        read = self.phase_rows()
        if read is None:
            return None
        columns, rows = read
        fixed = {"index", "kind", "status", "instance_id", "pull_bytes", "pull_mb_s", "error"}
        names = [c[:-3] for c in columns
                 if c not in fixed and c not in NOT_PHASES and c.endswith("_ms")]
        samples = [PhaseRow(index=int(row.get("index") or 0), kind=row.get("kind", ""),
                            status=int(float(row.get("status") or 0)),
                            e2e_ms=_num(row.get("e2e_ms")) or 0.0,
                            warm_ms=_num(row.get("warm_ms")),
                            instance_id=row.get("instance_id", ""),
                            phases={n: _num(row.get(f"{n}_ms")) for n in names})
                   for row in rows]
        return names, samples

    # -- writing -----------------------------------------------------------------------------

    def _replace(self, name: str, text: str) -> Path:
        out = atomic_write(self.path / name, text)
        self._forget(name)
        return out

    def write_run_yaml(self, doc: dict[str, Any], *, kind: str | None = None) -> Path:
        """run.yaml: `doc` with secret-looking values masked, its `kind` (under
        `layout.KIND_KEY`, after the title), plus ``host`` (versions, machine)."""
        import yaml

        if kind is not None:
            head = {k: doc[k] for k in ("title",) if k in doc}
            doc = {**head, layout.KIND_KEY: kind, **doc}
        body = {**doc, "host": doc.get("host") or host_info()}
        return self._replace(layout.RUN_YAML, yaml.safe_dump(mask_secrets(body), sort_keys=False,
                                                             allow_unicode=True))

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """summary.json (NaN and infinities become null)."""
        from .summary import write_summary

        self._forget(layout.SUMMARY)
        return write_summary(summary, self.path / layout.SUMMARY)

    def write_instances(self, instances: list[dict[str, Any]]) -> Path:
        """instances.csv: one row per instance, nested fields flattened as ``key.sub``."""
        rows = []
        for inst in instances:
            row: dict[str, Any] = {}
            for key, value in inst.items():
                if isinstance(value, dict):
                    for sub, v in value.items():
                        row[f"{key}.{sub}"] = v
                else:
                    row[key] = value
            rows.append(row)
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        path = self.path / layout.INSTANCES
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns or ["instance_id"])
            writer.writeheader()
            writer.writerows(rows)
        self._forget(layout.INSTANCES)
        return path

    def write_csv(self, name: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]
                  ) -> Path:
        """The CSV file `name` with `columns`, atomically."""
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
        path = atomic_write(self.path / name, buf.getvalue())
        self._forget(name)
        return path

    def write_json(self, name: str, doc: Any) -> Path:
        """The JSON file `name` (a `layout` constant), atomically; NaN and infinities become
        null."""
        from .summary import _clean

        self._forget(name)
        return atomic_write(self.path / name, json.dumps(_clean(doc), indent=2) + "\n")

    def write_tasks(self, rows: Iterable[dict[str, Any]]) -> Path:
        """tasks.csv: one row per async task of the run (`TASK_COLUMNS`)."""
        return self.write_csv(layout.TASKS, TASK_COLUMNS, rows)

    def task_rows(self) -> list[dict[str, str]] | None:
        """tasks.csv as rows of text, None when absent (a run without async tasks)."""
        text = self.text(layout.TASKS)
        return None if text is None else list(csv.DictReader(io.StringIO(text, newline="")))

    def write_requests(self, frame: pd.DataFrame) -> Path:
        """requests.csv from a frame of its columns (a simulation's requests)."""
        path = self.path / layout.REQUESTS
        frame.to_csv(path, index=False, float_format="%.6f")
        self._forget(layout.REQUESTS)
        return path

    def request_parts(self) -> list[Path]:
        """The per-process part files of a run still being merged, in name order."""
        return sorted(self.path.glob(layout.REQUEST_PARTS))

    def merge_request_parts(self) -> int:
        """Merge the part files into requests.csv (sorted by intended send), remove them, and
        return the number of requests."""
        from .records import merge_parts

        parts = self.request_parts()
        rows = merge_parts(parts, self.path / layout.REQUESTS)
        for p in parts:
            p.unlink()
        self._forget(layout.REQUESTS)
        return rows

    def finish(self, *, summary: dict[str, Any] | None = None,
               config: dict[str, Any] | None = None, kind: str | None = None,
               report: Callable[[RunFolder], Any] | None = None,
               report_must_not_fail: bool = False) -> None:
        """Complete the folder, in the same order for every kind: summary.json, run.yaml, then
        the report (`report`, e.g. `fcbench.report.html.write_report`, given by the caller:
        the report sits above this package). The data files (requests, instances, phases,
        sweep levels) are written before. With `report_must_not_fail` a report that fails is
        logged, not raised (a measured run must not be lost to a plot)."""
        if summary is not None:
            self.write_summary(summary)
        if config is not None:
            self.write_run_yaml(config, kind=kind)
        if report is None:
            return
        try:
            report(self)
        except Exception as exc:  # noqa: BLE001 - only where the caller says so, below
            if not report_must_not_fail:
                raise
            log.warning("could not write %s: %s", layout.REPORT, exc)


#: tasks.csv's columns: FC's task id; the request (requests.csv's request_id) and FC's request
#: id; FC's status and instance; epoch-second times (submitted: FC's Enqueued event; started:
#: first sent to an instance; end); `fcbench.measures`' queue_ms / run_ms; cold (the harness's
#: word; empty where unknown); retries (FC's alreadyRetriedTimes); the instance's last HTTP
#: status; FC's taskErrorMessage.
TASK_COLUMNS = ("task_id", "request_id", "fc_request_id", "status", "cold", "instance_id",
                "submitted_ts", "started_ts", "end_ts", "queue_ms", "run_ms", "retries",
                "status_code", "error")
__all__ += ["TASK_COLUMNS"]

#: instances.csv's lifecycle columns (what the timeline and in-flight plots read).
LIFECYCLE = ("instance_id", "created_ts", "ready_ts", "stopped_ts")
