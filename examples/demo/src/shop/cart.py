"""A shopping cart priced against the catalog."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from shop import catalog, pricing
from shop.money import ZERO, Money


class Cart:
    def __init__(self, country: str = "DE") -> None:
        self.country = country
        self.lines: Counter[str] = Counter()
        self.closed = False

    def add(self, sku: str, quantity: int = 1) -> None:
        if self.closed:
            raise RuntimeError("cart is closed")
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        catalog.lookup(sku)
        self.lines[sku] += quantity

    def remove(self, sku: str) -> None:
        del self.lines[sku]

    def line_total(self, sku: str) -> Money:
        product = catalog.lookup(sku)
        quantity = self.lines[sku]
        gross = pricing.with_vat(product.price, self.country, product.category)
        discount = pricing.bulk_discount(quantity)
        return gross.times(quantity).times(Decimal(1) - discount)

    def total(self) -> Money:
        total = ZERO
        for sku in sorted(self.lines):
            total = total + self.line_total(sku)
        return total

    def close(self) -> None:
        self.closed = True
