"""Price tables: YAML a user can copy and edit, each with its source and date, one regime each.

Key names: `PriceTable` (either `GbSecondTable`, FC's documented GB·s model, or `CuTable`, FC 3.0's
compute units), `load_table` (a shipped name or a file; errors name file:line:key), `TABLES`.
A table never mixes regimes: a sum is made in one table's units and currency only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from .._yaml import load_located, validate
from ..errors import SpecError

__all__ = ["REGIMES", "TABLES", "CuTable", "GbSecondTable", "PriceTable", "load_table",
           "parse_server_prices", "server_price"]

_DIR = Path(__file__).with_name("tables")
#: Shipped tables by name (files in fcbench/cost/tables/).
TABLES = {p.stem: p for p in sorted(_DIR.glob("*.yaml"))}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True, allow_inf_nan=False)


class _Table(_Model):
    name: str
    currency: str = Field(min_length=1)
    source: str = Field(min_length=1, description="where the prices were read")
    date: str = Field(min_length=1, description="when they were published or read")
    note: str = "as published; check your console"
    server_per_hour: float | None = Field(None, ge=0, description="a GPU server, to compare")
    bill_idle: bool = Field(False, description="idle seconds of instances are billed")


class GbSecondTable(_Table):
    """FC's documented model: GPU memory spec (GB) × billed seconds × price."""

    regime: Literal["gb-s"]
    gpu_gb_s: float = Field(ge=0, description="per GB·s of gpuMemorySize")


class Tier(_Model):
    up_to: float | None = Field(description="CU a month up to which this price holds (null: "
                                            "the rest)")
    price: float = Field(ge=0, description="per CU")


class GpuCu(_Model):
    active_gb_s: float = Field(ge=0)
    idle_gb_s: float = Field(ge=0)


class CuRates(_Model):
    vcpu_active_s: float = Field(ge=0)
    vcpu_idle_s: float = Field(ge=0)
    memory_gb_s: float = Field(ge=0)
    disk_gb_s: float = Field(ge=0)
    per10k_invocations: float = Field(ge=0, alias="per10kInvocations")
    gpu: dict[str, GpuCu]


class CuTable(_Table):
    """FC 3.0: usage converted to compute units (CU), priced in monthly tiers."""

    regime: Literal["cu"]
    tiers: list[Tier] = Field(min_length=1)
    cu: CuRates

    @field_validator("tiers")
    @classmethod
    def _ordered(cls, tiers: list[Tier]) -> list[Tier]:
        bounds = [t.up_to for t in tiers]
        if any(b is None for b in bounds[:-1]):
            raise ValueError("only the last tier may have upTo: null")
        known = [b for b in bounds if b is not None]
        if known != sorted(known):
            raise ValueError("tiers must be in increasing upTo order")
        return tiers


PriceTable = Annotated[Union[GbSecondTable, CuTable], Field(discriminator="regime")]
#: regime -> its model (the union above, and the loader's check, read this)
REGIMES: dict[str, type[_Table]] = {"gb-s": GbSecondTable, "cu": CuTable}


def parse_server_prices(values: tuple[str, ...] | list[str]) -> dict[str, float]:
    """``("14CNY", "2.1 usd")`` -> ``{"CNY": 14.0, "USD": 2.1}``; a bare number keys ``""``
    (every table's currency).

    Raises:
        ValueError: a text that is not a price per hour, or a negative one (the message says
            what to write).
    """
    out: dict[str, float] = {}
    for text in values:
        raw = text.strip()
        number = raw.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ").strip()
        currency = raw[len(number):].strip().upper()
        try:
            value = float(number)
        except ValueError:
            raise ValueError(f"cannot read {text!r}; write a price per hour such as 14CNY, "
                             "2.1USD or 14") from None
        if value < 0:
            raise ValueError("a price cannot be negative")
        out[currency] = value
    return out


def server_price(prices: dict[str, float], table: GbSecondTable | CuTable) -> float | None:
    """The server price per hour given for `table`'s currency, else the bare one, else None
    (the table's own)."""
    return prices.get(table.currency.upper(), prices.get(""))


def load_table(name_or_path: str | Path) -> GbSecondTable | CuTable:
    """A shipped table by name (`TABLES`) or a YAML file.

    Raises:
        SpecError: an unknown name, or a file whose first problem is named file:line:key.
    """
    path = TABLES.get(str(name_or_path)) or Path(name_or_path)
    if not path.is_file():
        raise SpecError(f"no price table {str(name_or_path)!r}; use one of "
                        f"{', '.join(TABLES)} or a YAML file (copy one from {_DIR})",
                        file="--table")
    doc = load_located(path)
    if not isinstance(doc.data, dict):
        raise SpecError("a price table is a YAML mapping with regime, currency and prices",
                        file=doc.file, line=1)
    regime = doc.data.get("regime")
    model = REGIMES.get(regime) if isinstance(regime, str) else None
    if model is None:
        raise SpecError(f"regime must be one of {', '.join(REGIMES)} (got {regime!r}); a table "
                        "never mixes regimes", file=doc.file, line=doc.line_of(("regime",)),
                        path="regime")
    return validate(doc, model.model_validate)  # type: ignore[return-value]
