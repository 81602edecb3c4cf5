"""`fcbench.secrets`: one definition of a secret-looking key, used by specs, workloads, run.yaml."""

from __future__ import annotations

import pytest

from fcbench.secrets import MASK, looks_secret, mask_secrets


@pytest.mark.parametrize("key", ["ALIBABA_CLOUD_ACCESS_KEY_ID", "access_key_secret", "HF_TOKEN",
                                 "securityToken", "DB_PASSWORD", "Authorization", "OPENAI_API_KEY",
                                 "token"])
def test_secret_keys(key):
    assert looks_secret(key)


@pytest.mark.parametrize("key", ["FCBENCH_MODEL", "maxTokens", "max_new_tokens", "prompt",
                                 "TOKENIZER_PATH", "functionName",
                                 "return_tokens_as_token_ids", "prompt_token_ids"])
def test_ordinary_keys(key):
    assert not looks_secret(key)


def test_mask_secrets_walks_nested_values_and_keeps_empty_ones_visible():
    doc = {"a": {"HF_TOKEN": "hf_x", "ok": 1}, "l": [{"password": "p"}], "API_KEY": ""}
    assert mask_secrets(doc) == {"a": {"HF_TOKEN": MASK, "ok": 1}, "l": [{"password": MASK}],
                                 "API_KEY": ""}
