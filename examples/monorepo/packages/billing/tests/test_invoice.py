from billing.invoice import total, with_tax


def test_total():
    assert total([("1.50", 2), ("0.25", 4)]) == "4.00"


def test_empty_total():
    assert total([]) == "0.00"


def test_tax():
    assert with_tax("10.00", 20) == "12.00"
