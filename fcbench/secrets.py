"""What counts as a secret, once: the key names whose values never reach a results file or log.

Key names: `looks_secret`, `mask_secrets`, `MASK`. Used by the function spec (masked environment),
the workload loader (credentials refused in files) and every run folder's ``run.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "looks_secret", "mask_secrets"]

MASK = "***"

_SECRET = re.compile(r"SECRET|PASSWORD|PASSWD|ACCESS_?KEY|CREDENTIAL|AUTHORIZATION|API_?KEY|"
                     r"PRIVATE|"
                     # TOKEN as a word of its own (HF_TOKEN, securityToken), not maxTokens,
                     # nor the ids of a model's tokens (vLLM's prompt_token_ids)
                     r"(?:^|[_.-]|SECURITY|ACCESS|AUTH|SESSION|BEARER|REFRESH)TOKEN"
                     r"(?:$|[_.-](?!IDS?(?:$|[_.-])))",
                     re.I)


def looks_secret(key: str) -> bool:
    """Whether a key (an environment variable, a config field) names a secret."""
    return bool(_SECRET.search(key))


def mask_secrets(value: Any) -> Any:
    """A copy of a JSON-like value with the values of secret-looking keys replaced by `MASK`."""
    if isinstance(value, Mapping):
        return {k: (MASK if isinstance(k, str) and looks_secret(k) and v not in (None, "")
                    else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v) for v in value]
    return value
