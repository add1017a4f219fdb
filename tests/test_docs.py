"""docs/kernels.md is runnable: its ```python blocks run in order, in one namespace, on every backend; so is
the README's Python API example."""
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "kernels.md"
README = Path(__file__).resolve().parents[1] / "README.md"
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


def test_readme_api_example_runs_and_its_linear_regression_converges(tmp_path, monkeypatch):
    block = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)[0]
    assert "line.fit(" in block
    monkeypatch.chdir(tmp_path)  # the example saves model.npz in the working directory
    namespace = {"__name__": "readme"}
    exec(compile(block, "README.md[python API]", "exec"), namespace)
    h, line = namespace["h"], namespace["line"]
    assert h.stop_reason.startswith("tol: every parameter step < 1e-06 at step ")
    stated = int(re.search(r"at step (\d+)", block).group(1))  # the step the README's comment quotes
    assert abs(h.epochs - stated) <= 5, (h.epochs, stated)
    assert line.weights[0][0, 0] == pytest.approx(2.0, abs=1e-3) and line.biases[0][0] == pytest.approx(1.0, abs=1e-3)
    assert namespace["net"].score(namespace["X_test"], namespace["y_test"]) > 0.9


def test_readme_quick_start_makes_the_environment_before_installing():
    text = README.read_text(encoding="utf-8")
    quick = text[text.index("## Quick start"):text.index("## The Python API")]
    commands = " && ".join(re.findall(r"^```bash\n(.*?)^```", quick, flags=re.S | re.M)[0].split("\n"))
    assert "pip install" in commands
    # a distribution's Python refuses pip install outside a virtual environment (PEP 668)
    assert -1 < commands.find("python3 -m venv ") < commands.find(". .venv/bin/activate") < commands.find("pip install")
