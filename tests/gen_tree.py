"""Generates a synthetic project for rpytest's scaling benchmarks.

usage: python tests/gen_tree.py DIR N_TEST_FILES [MODULES]

DIR gets a package `app/` with MODULES modules (a chain of imports, every
module importing its predecessor's module within a group of 10) and
N_TEST_FILES test files under `tests/`, each importing one module and holding
three tests. Deterministic: the same arguments give the same bytes.
"""
import os
import sys


def main() -> None:
    root, n = sys.argv[1], int(sys.argv[2])
    modules = int(sys.argv[3]) if len(sys.argv) > 3 else max(10, n // 10)
    os.makedirs(os.path.join(root, "app"), exist_ok=True)
    os.makedirs(os.path.join(root, "tests"), exist_ok=True)
    with open(os.path.join(root, "pytest.ini"), "w") as f:
        f.write("[pytest]\ntestpaths = tests\npythonpath = .\n")
    with open(os.path.join(root, "app", "__init__.py"), "w") as f:
        f.write("")
    for m in range(modules):
        with open(os.path.join(root, "app", f"mod{m}.py"), "w") as f:
            if m % 10:
                f.write(f"from app import mod{m - 1}\n\n")
            f.write(f"def value():\n    return {m}\n")
    for t in range(n):
        sub = os.path.join(root, "tests", f"d{t // 500}")
        os.makedirs(sub, exist_ok=True)
        m = t % modules
        with open(os.path.join(sub, f"test_f{t}.py"), "w") as f:
            f.write(f"from app import mod{m}\n\n\n")
            for i in range(3):
                f.write(f"def test_{i}():\n    assert mod{m}.value() == {m}\n\n\n")


if __name__ == "__main__":
    main()
