"""Entry point of the in-instance server: ``python -m fcbench.server``."""

import time

BOOT_NS = time.time_ns()  # first line of main: the instance's own clock starts here

from .app import main  # noqa: E402  (imports are part of what the timeline measures)

main(BOOT_NS)
