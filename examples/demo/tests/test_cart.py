from decimal import Decimal

import pytest

from shop.money import ZERO, Money
from shop.pricing import vat_rate


def test_empty_cart_total(cart):
    assert cart.total() == ZERO


def test_add_and_total(cart, sample_skus, products):
    sku = sample_skus["toys"]
    cart.add(sku, 2)
    net = products[sku].price.times(2)
    assert cart.total() == net + net.times(vat_rate("DE"))


def test_quantities_accumulate(cart, sample_skus):
    sku = sample_skus["garden"]
    cart.add(sku)
    cart.add(sku, 4)
    assert cart.lines[sku] == 5


@pytest.mark.parametrize("quantity", [0, -3])
def test_rejects_non_positive_quantity(cart, sample_skus, quantity):
    with pytest.raises(ValueError):
        cart.add(sample_skus["music"], quantity)


def test_rejects_unknown_sku(cart):
    with pytest.raises(KeyError):
        cart.add("SKU-NOPE")


def test_bulk_discount_applies(cart, sample_skus, products):
    sku = sample_skus["kitchen"]
    cart.add(sku, 10)
    undiscounted = products[sku].price.times(10)
    assert cart.total() < undiscounted + undiscounted.times(vat_rate("DE"))


def test_books_use_reduced_vat(cart, sample_skus, products):
    sku = sample_skus["books"]
    cart.add(sku)
    price = products[sku].price
    assert cart.total() == price + price.times(Decimal("0.07"))


def test_closed_cart_refuses_items(cart, sample_skus):
    cart.close()
    with pytest.raises(RuntimeError, match="closed"):
        cart.add(sample_skus["toys"])


def test_remove(cart, sample_skus):
    cart.add(sample_skus["toys"])
    cart.remove(sample_skus["toys"])
    assert cart.total() == Money(0)
