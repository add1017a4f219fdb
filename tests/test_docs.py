"""docs/kernels.md is runnable: its ```python blocks run in order, in one namespace, on every backend."""
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "kernels.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_doc_has_examples():
    assert len(BLOCKS) >= 6
    assert sum('kernels.load("numpy")' in block for block in BLOCKS) == 1  # the one line the test rewrites


def test_kernels_md_runs(backend, capsys):
    namespace = {"__name__": "kernels_md"}
    for i, block in enumerate(BLOCKS):
        code = block.replace('kernels.load("numpy")', f'kernels.load("{backend}")')
        try:
            exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block so a failure points at the page
            pytest.fail(f"docs/kernels.md block {i} failed on backend {backend}: {type(exc).__name__}: {exc}")
    assert namespace["k"].name == backend
    assert "W: dtype float64 differs" in capsys.readouterr().out
