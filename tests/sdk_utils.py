"""The real FC SDK (`alibabacloud-fc20230330`) pointed at a harness: a client, and request
bodies that carry the harness-only ``harness:`` section (FC ignores keys it does not know)."""

from __future__ import annotations

from alibabacloud_fc20230330 import models as m
from alibabacloud_fc20230330.client import Client
from alibabacloud_tea_openapi.models import Config
from Tea.exceptions import TeaException

from fcbench.signing import AccessKey, read_harness_key


def sdk(url: str, key: AccessKey | None = None) -> Client:
    """An SDK client for the harness at `url`, signing with `key` (default: the harness's own,
    from its key file), as a user's program would with the pair the harness printed."""
    endpoint = url.removeprefix("http://")
    key = key or read_harness_key(endpoint)
    return Client(Config(access_key_id=key.access_key_id,
                         access_key_secret=key.access_key_secret,
                         endpoint=endpoint, protocol="http", read_timeout=30_000))


class _WithHarness:
    """Adds ``harness`` to the body the SDK model sends."""

    def __init__(self, harness: dict | None = None, **kw) -> None:
        super().__init__(**kw)  # type: ignore[call-arg]
        self.harness = harness

    def to_map(self) -> dict:
        out = super().to_map()  # type: ignore[misc]
        if self.harness:
            out["harness"] = self.harness
        return out


class CreateInput(_WithHarness, m.CreateFunctionInput):
    """The SDK's CreateFunction body plus the harness-only section."""


class UpdateInput(_WithHarness, m.UpdateFunctionInput):
    """The SDK's UpdateFunction body plus the harness-only section."""


def fc_code(fn, *args, **kw) -> tuple[str, int, str]:
    """The FC error code, HTTP status and message of the SDK exception `fn(*args, **kw)`
    raises (the test fails if it raises none)."""
    import pytest

    with pytest.raises(TeaException) as info:
        fn(*args, **kw)
    return info.value.code, info.value.status_code, info.value.message
