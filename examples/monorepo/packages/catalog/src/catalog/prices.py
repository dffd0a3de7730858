import csv
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "products.csv"


def load(path=DATA):
    with open(path, newline="") as f:
        return {row["sku"]: row["price"] for row in csv.DictReader(f)}
