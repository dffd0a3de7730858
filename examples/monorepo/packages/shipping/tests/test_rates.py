from shipping.rates import RATES, rate, region


def test_one_kilo_costs_the_base_rate():
    assert rate(1) == RATES[region()]


def test_heavier_costs_more():
    assert float(rate(3)) > float(rate(1))
