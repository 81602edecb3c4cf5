"""Rendering a report template (`templates/`, each extending ``base.html``) to a file.

Key names: `render_html`. Both reports (`fcbench.report.html`, `fcbench.report.compare_html`)
render through it, so they share the page head, the time and version stamp and the atomic write.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import __version__
from .._io import atomic_write

__all__ = ["render_html"]


def render_html(template: str, out: str | Path, **context: Any) -> Path:
    """Render `template` with `context` (plus ``made`` and ``version``) into `out`, atomically
    (a temporary file, then rename); returns `out`."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("fcbench.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    html = env.get_template(template).render(
        made=time.strftime("%Y-%m-%d %H:%M:%S"), version=__version__, **context)
    return atomic_write(Path(out), html)
