"""The product catalog.

Built once at import time from a deterministic generator, the way real
projects load a big reference table: importing this module takes a visible
fraction of a second, which is what a warm rpytest daemon saves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shop.money import Money

SIZE = 20_000
CATEGORIES = ("books", "garden", "kitchen", "music", "toys")


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price: Money
    check: int


def check_digit(sku: str) -> int:
    """A checksum over the SKU's digest, so a mistyped SKU is detected."""
    digest = hashlib.sha256(sku.encode()).hexdigest()
    return sum(int(c, 16) for c in digest[:16]) % 97


def _build() -> dict[str, Product]:
    table = {}
    for i in range(SIZE):
        sku = f"SKU-{i:06d}"
        category = CATEGORIES[i % len(CATEGORIES)]
        price = Money(100 + (i * 37) % 9900)
        table[sku] = Product(sku, f"{category} item {i}", category, price, check_digit(sku))
    return table


PRODUCTS: dict[str, Product] = _build()


def lookup(sku: str) -> Product:
    try:
        return PRODUCTS[sku]
    except KeyError:
        raise KeyError(f"unknown SKU {sku!r}") from None


def by_category(category: str) -> list[Product]:
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    return [p for p in PRODUCTS.values() if p.category == category]
