from catalog.prices import load


def test_every_product_has_a_price():
    prices = load()
    assert prices and all(float(p) > 0 for p in prices.values())


def test_known_product():
    assert load()["apple"] == "0.50"
