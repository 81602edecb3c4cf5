"""The `fcbench` command line: a thin Click layer over the library.

Each command group lives in its own module and is registered here. Options can also come from
``FCBENCH_*`` environment variables (e.g. ``FCBENCH_HARNESS_SERVE_PORT``).
"""

from __future__ import annotations

from ._base import FcbenchGroup, main_group
from .coldstart import coldstart
from .cost import cost
from .deploy import deploy
from .doctor import doctor
from .harness import harness
from .images import images
from .invoke import invoke
from .report import report
from .run import run
from .simulate import simulate

__all__ = ["main"]

main: FcbenchGroup = main_group
main.add_command(coldstart)
main.add_command(cost)
main.add_command(deploy)
main.add_command(doctor)
main.add_command(harness)
main.add_command(images)
main.add_command(invoke)
main.add_command(report)
main.add_command(run)
main.add_command(simulate)
