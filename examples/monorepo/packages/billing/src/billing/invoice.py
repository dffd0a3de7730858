from shared.money import cents, fmt


def total(lines):
    return fmt(sum(cents(price) * qty for price, qty in lines))


def with_tax(amount: str, rate_percent: int) -> str:
    c = cents(amount)
    return fmt(c + c * rate_percent // 100)
