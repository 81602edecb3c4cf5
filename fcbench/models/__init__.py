"""Sample models, looked up by name and imported lazily (the server imports only the one it serves).

Each model module exposes ``load(options) -> Model`` and may expose ``prepare(options)``, which the
harness calls once before starting instances (e.g. to build a seeded model file), so that cold
starts measure loading, not building.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType

from .base import BadInput, Model

__all__ = ["MODELS", "BadInput", "Model", "load_model", "model_module", "prepare_model"]

#: model name -> module that implements it
MODELS: dict[str, str] = {
    "mobilenet-v2": "fcbench.models.mobilenet_v2",
    "sleep": "fcbench.models.sleep",
    "llm": "fcbench.models.llm",
    "stable-diffusion": "fcbench.models.stable_diffusion",
}


def model_module(name: str) -> ModuleType:
    """Import the module of model `name`; ValueError names the known models."""
    try:
        return importlib.import_module(MODELS[name])
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; FCBENCH_MODEL must be one of: {known}") from None


def load_model(name: str, options: Mapping[str, str]) -> Model:
    """Load model `name` configured by env-style `options`."""
    return model_module(name).load(options)


def prepare_model(name: str, options: Mapping[str, str]) -> None:
    """Run the model's one-off preparation (if it has one) outside any instance."""
    prepare = getattr(model_module(name), "prepare", None)
    if prepare is not None:
        prepare(options)
