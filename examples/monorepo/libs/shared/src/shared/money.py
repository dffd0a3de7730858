from decimal import ROUND_HALF_EVEN, Decimal


def cents(amount: str) -> int:
    """'12.345' -> 1234 (banker's rounding)."""
    return int((Decimal(amount) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def fmt(cents_value: int) -> str:
    return "%d.%02d" % divmod(cents_value, 100)
