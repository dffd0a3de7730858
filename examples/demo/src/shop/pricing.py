"""Tax rates and discount rules."""

from __future__ import annotations

from decimal import Decimal

from shop.money import Money

VAT = {
    "DE": Decimal("0.19"),
    "FR": Decimal("0.20"),
    "LU": Decimal("0.17"),
    "IE": Decimal("0.23"),
}
REDUCED_CATEGORIES = {"books"}
REDUCED_VAT = Decimal("0.07")


def vat_rate(country: str, category: str = "") -> Decimal:
    if country not in VAT:
        raise KeyError(f"no VAT rate for {country!r}")
    if category in REDUCED_CATEGORIES:
        return REDUCED_VAT
    return VAT[country]


def with_vat(net: Money, country: str, category: str = "") -> Money:
    return net + net.times(vat_rate(country, category))


def bulk_discount(quantity: int) -> Decimal:
    """Fraction taken off for buying many of one item."""
    if quantity < 0:
        raise ValueError("quantity must be >= 0")
    if quantity >= 100:
        return Decimal("0.15")
    if quantity >= 10:
        return Decimal("0.05")
    return Decimal("0")
