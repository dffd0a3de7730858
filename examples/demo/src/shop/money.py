"""Exact money amounts in one currency, stored as integer cents."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal


@dataclass(frozen=True, order=True)
class Money:
    cents: int
    currency: str = "EUR"

    @classmethod
    def parse(cls, text: str, currency: str = "EUR") -> "Money":
        """Parse "12.34" (or "12", "-0.5") into Money."""
        amount = Decimal(text.strip())
        cents = (amount * 100).quantize(Decimal("1"), rounding=ROUND_HALF_EVEN)
        return cls(int(cents), currency)

    def _check(self, other: "Money") -> None:
        if self.currency != other.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: "Money") -> "Money":
        self._check(other)
        return Money(self.cents + other.cents, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._check(other)
        return Money(self.cents - other.cents, self.currency)

    def times(self, factor: Decimal | int) -> "Money":
        """Multiply, rounding half to even to whole cents."""
        exact = Decimal(self.cents) * Decimal(factor)
        return Money(int(exact.quantize(Decimal("1"), rounding=ROUND_HALF_EVEN)), self.currency)

    def __str__(self) -> str:
        sign = "-" if self.cents < 0 else ""
        whole, frac = divmod(abs(self.cents), 100)
        return f"{sign}{whole}.{frac:02d} {self.currency}"


ZERO = Money(0)
