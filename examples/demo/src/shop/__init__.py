"""A tiny shop: money, a product catalog, carts and pricing rules."""

from shop.money import Money

__all__ = ["Money"]
