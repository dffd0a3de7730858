import os

from shared.money import cents, fmt

RATES = {"eu": "4.90", "us": "6.50"}


def region() -> str:
    return os.environ.get("SHIPPING_REGION", "eu")


def rate(weight_kg: int) -> str:
    return fmt(cents(RATES[region()]) * max(1, weight_kg))
