"""The run folder as one format: its file names (`layout`), reading and writing it
(`folder.RunFolder`; fresh folders: `rundir`), per-request records (`records`) and the run
summary (`summary`).

Sits below `fcbench.report`, `fcbench.cost`, `fcbench.sim` and `fcbench.coldstart`, which all
read and write run folders through it; it imports none of them.
"""

from . import layout
from .folder import PhaseRow, RunFolder
from .rundir import host_info, new_run_dir

__all__ = ["PhaseRow", "RunFolder", "host_info", "layout", "new_run_dir"]
