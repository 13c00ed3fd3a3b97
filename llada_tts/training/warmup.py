"""The learning-rate warmup: one setting, ``warmup``, in one of three units.

    warmup: 150          150 optimizer updates (a whole number; "150 updates" reads the same)
    warmup: 3%           3 % of the run's optimizer updates, rounded up
    warmup: 0.5 epochs   half an epoch of optimizer updates, rounded to the nearest update

``0`` (the default) is no warmup. The earlier scripts' three keys map onto it (:func:`from_legacy`):
``warmup_steps: N`` is ``N``, ``warmup_ratio: r`` is ``100 r %`` and ``warmup_epochs: x`` is ``x epochs``;
as before, warmup_steps or warmup_epochs wins over a warmup_ratio beside it, and warmup_steps with
warmup_epochs is an error. Torch-free: the config validates with it, the trainer takes its length.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

UNITS = ("updates", "fraction", "epochs")
FORMS = "a whole number of optimizer updates (150), a percentage of all of them (3%) or epochs (0.5 epochs)"
LEGACY_KEYS = ("warmup_ratio", "warmup_steps", "warmup_epochs")  # the earlier scripts' spellings
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%|epochs?|updates?)?\s*$")


@dataclass(frozen=True)
class Warmup:
    """A warmup length: ``amount`` optimizer updates, fraction of all updates, or epochs (``unit``)."""

    amount: float
    unit: str = "updates"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"warmup: unit must be one of {UNITS}, got {self.unit!r}")
        if not math.isfinite(self.amount) or self.amount < 0:
            raise ValueError(f"warmup: must be >= 0, got {self.amount!r}")
        if self.unit == "updates" and self.amount != int(self.amount):
            raise ValueError(f"warmup: optimizer updates must be a whole number, got {self.amount!r}")
        if self.unit == "fraction" and self.amount >= 1:
            raise ValueError(f"warmup: must be under 100% of the updates, got {_decimal(self.amount, shift=2)}%")

    @classmethod
    def parse(cls, text: str | int) -> Warmup:
        """``150``, ``3%`` or ``0.5 epochs`` (see the module docstring); ValueError otherwise."""
        match = _PATTERN.match(str(text))
        if match is None:
            raise ValueError(f"warmup: must be {FORMS}, got {text!r}")
        number, unit = match.groups()
        if unit == "%":  # exact decimal shift: "3%" is the same float as a warmup_ratio of 0.03
            return cls(float(Decimal(number) / 100), "fraction")
        if unit and unit.startswith("epoch"):
            return cls(float(number), "epochs")
        value = float(number)
        if value != int(value):
            raise ValueError(f"warmup: optimizer updates must be a whole number, got {text!r}; "
                             f"write {_decimal(value, shift=2)}% for a share of the updates or {number} epochs")
        return cls(value, "updates")

    def __str__(self) -> str:
        """The spelling :meth:`parse` reads back to this value (``150``, ``3%``, ``0.5 epochs``)."""
        if self.unit == "updates":
            return str(int(self.amount))
        if self.unit == "fraction":
            return f"{_decimal(self.amount, shift=2)}%"
        return f"{_decimal(self.amount)} {'epoch' if self.amount == 1 else 'epochs'}"

    def updates(self, total_steps: int, updates_per_epoch: int) -> int:
        """Warmup length in optimizer updates for a run of ``total_steps`` with ``updates_per_epoch``."""
        if self.unit == "updates":
            return int(self.amount)
        if self.unit == "epochs":
            return int(round(self.amount * updates_per_epoch))
        return int(math.ceil(self.amount * total_steps))


def _decimal(x: float, shift: int = 0) -> str:
    """``x`` times 10**shift in plain decimals, exactly as ``repr(x)`` spells it: 0.03, shift 2 -> '3'."""
    try:
        return format(Decimal(repr(float(x))).scaleb(shift).normalize(), "f")
    except InvalidOperation:  # inf / nan: refused before anything is printed
        return repr(x)


def from_legacy(warmup_ratio: float | None = None, warmup_steps: int | None = None,
                warmup_epochs: float | None = None) -> Warmup | None:
    """The warmup the earlier keys give (None: none of them set; null values count as unset).

    warmup_steps or warmup_epochs (not both) wins over warmup_ratio, as in the earlier scripts.
    """
    if warmup_steps is not None and warmup_epochs is not None:
        raise ValueError("warmup: set only one of warmup_steps and warmup_epochs (both are given; better: one "
                         f"warmup key, {FORMS})")
    try:
        if warmup_steps is not None:
            return Warmup(float(warmup_steps), "updates")
        if warmup_epochs is not None:
            return Warmup(float(warmup_epochs), "epochs")
        if warmup_ratio is not None:
            return Warmup(float(warmup_ratio), "fraction")
    except ValueError as e:
        key = "warmup_steps" if warmup_steps is not None else (
            "warmup_epochs" if warmup_epochs is not None else "warmup_ratio")
        raise ValueError(f"{key}: {str(e).removeprefix('warmup: ')}") from None
    return None
