import re

from catalog.prices import load


def test_skus_are_lowercase_words():
    assert all(re.fullmatch(r"[a-z]+", sku) for sku in load())
