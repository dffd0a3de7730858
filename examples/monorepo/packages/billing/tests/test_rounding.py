import pytest

from shared.money import cents


@pytest.mark.parametrize("amount,expected", [("0.125", 12), ("0.135", 14), ("1", 100)])
def test_bankers_rounding(amount, expected):
    assert cents(amount) == expected
