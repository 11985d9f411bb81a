"""The README's "Works with" table names, for each row, a test that exists."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _works_with_rows() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Works with", 1)[1].split("\n#", 1)[0]
    return re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", section)


def test_every_works_with_row_names_an_existing_test():
    rows = _works_with_rows()
    assert len(rows) >= 20
    for path, name in rows:
        tree = ast.parse((ROOT / path).read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in names, f"{path}::{name}"
