"""Fixtures shared by the shop tests: one of each scope."""

from __future__ import annotations

import pytest

from shop.cart import Cart


@pytest.fixture(scope="session")
def products():
    """The full catalog table; importing it is the slow part, done once."""
    from shop import catalog

    return catalog.PRODUCTS


@pytest.fixture(scope="session")
def opened_carts():
    """Every cart handed out in this session; all must be closed at the end."""
    carts: list[Cart] = []
    yield carts
    still_open = [c for c in carts if not c.closed]
    assert not still_open, f"{len(still_open)} carts left open"


@pytest.fixture(scope="module")
def sample_skus(products):
    """A handful of SKUs, one per category, shared by the tests of a module."""
    seen: dict[str, str] = {}
    for sku, product in products.items():
        seen.setdefault(product.category, sku)
        if len(seen) == 5:
            break
    yield dict(seen)
    seen.clear()


@pytest.fixture
def cart(opened_carts):
    """A fresh German cart, closed again after the test."""
    c = Cart("DE")
    opened_carts.append(c)
    yield c
    c.close()
