"""The base every validated YAML document builds on (function specs, workloads), and the one
unknown-key check with its did-you-mean hint.

Key names: `Model` (camelCase aliases, unknown keys refused, frozen, finite numbers only),
`located_error` (a `SpecError` at a document location), `reject_unknown_keys`, `model_keys`.
Below `fcbench.spec` and `fcbench.load`: imports neither.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from ._yaml import LocatedDoc, _dotted
from .errors import SpecError

__all__ = ["Model", "did_you_mean", "located_error", "model_keys", "reject_unknown_keys"]


class Model(BaseModel):
    """camelCase keys (snake_case accepted too), unknown keys refused, immutable; and
    allow_inf_nan=False: `inf` would pass every `gt=0` bound."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True, allow_inf_nan=False)


def model_keys(model: type[BaseModel]) -> list[str]:
    """The keys `model` takes as written in YAML (its aliases), in declaration order."""
    return [f.alias or name for name, f in model.model_fields.items()]


def located_error(doc: LocatedDoc, loc: tuple[Any, ...], message: str) -> SpecError:
    """A `SpecError` naming `doc`'s file, the line of `loc` and `loc` dotted (``plan.rate``)."""
    return SpecError(message, file=doc.file, line=doc.line_of(loc), path=_dotted(loc) or None)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"did you mean 'rate'? "`` for the known word closest to `word`, else ``""``."""
    close = difflib.get_close_matches(str(word), list(known), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def reject_unknown_keys(doc: LocatedDoc, raw: Any, model: type[BaseModel],
                         loc: tuple[Any, ...], what: str = "") -> None:
    """Refuse a key of `raw` that `model` does not take, with the closest known key as a hint
    (``kind`` first in the list). `what` names the section in the message.

    Checked before pydantic so a misspelt key is reported as such, not as a missing one."""
    if not isinstance(raw, dict):
        return
    known = sorted(model_keys(model), key=lambda k: k != "kind")  # stable: declared order
    for key in raw:
        if key not in known and key not in model.model_fields:
            where = what or ("this section" if loc else "a workload")
            raise located_error(doc, loc + (key,), f"unknown key; {did_you_mean(key, known)}"
                                                   f"{where} takes {', '.join(known)}")
