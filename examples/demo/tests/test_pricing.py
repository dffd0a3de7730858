from decimal import Decimal

import pytest

from shop import pricing
from shop.money import Money


@pytest.mark.parametrize(
    ("country", "category", "rate"),
    [
        ("DE", "", "0.19"),
        ("FR", "toys", "0.20"),
        ("LU", "garden", "0.17"),
        ("IE", "music", "0.23"),
        ("DE", "books", "0.07"),
        ("FR", "books", "0.07"),
    ],
)
def test_vat_rate(country, category, rate):
    assert pricing.vat_rate(country, category) == Decimal(rate)


def test_unknown_country():
    with pytest.raises(KeyError):
        pricing.vat_rate("XX")


@pytest.mark.parametrize(("quantity", "discount"), [(0, "0"), (9, "0"), (10, "0.05"), (99, "0.05"), (100, "0.15")])
def test_bulk_discount(quantity, discount):
    assert pricing.bulk_discount(quantity) == Decimal(discount)


def test_negative_quantity():
    with pytest.raises(ValueError):
        pricing.bulk_discount(-1)


def test_with_vat():
    assert pricing.with_vat(Money(1000), "DE") == Money(1190)
