"""examples/socketkit_tour.ipynb, run top to bottom by a real Jupyter
kernel (nbclient + ipykernel), as a new user runs it (issue 12): every cell
runs without error, the scan cell shows an HTML table, the tcping cell an
SVG chart; and the committed notebook carries no outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TOUR = Path(__file__).parent.parent / "examples" / "socketkit_tour.ipynb"

pytestmark = pytest.mark.timeout(180)


def _tagged(nb: Any, tag: str) -> Any:
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"one cell tagged {tag!r}"
    return cells[0]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    nb = nbformat.read(TOUR, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        # Any cell that raises fails the run (CellExecutionError).
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path_factory.mktemp("tour"))}},
    )
    client.execute()
    return nb


def test_the_committed_tour_has_no_outputs() -> None:
    nb = nbformat.read(TOUR, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_every_cell_runs_without_error(executed: Any) -> None:
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    stderr = [o.text for c in code for o in c.outputs if o.get("name") == "stderr"]
    assert not any("Traceback" in t or "Warning" in t for t in stderr), stderr


def test_the_scan_cell_shows_an_html_table(executed: Any) -> None:
    cell = _tagged(executed, "scan")
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert len(results) == 1
    html = results[0].data["text/html"]
    assert html.startswith('<table class="socketkit">') and "<td>open</td>" in html


def test_the_tcping_cell_shows_an_svg_chart(executed: Any) -> None:
    cell = _tagged(executed, "tcping")
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert len(results) == 1
    html = results[0].data["text/html"]
    assert "<table" in html and "<svg" in html and "</svg>" in html
    # 20 pings: a dot per reply and a cross per lost ping.
    assert html.count("<circle") + html.count(": lost</title>") == 20


def test_the_async_cell_awaits_at_top_level(executed: Any) -> None:
    cell = _tagged(executed, "async")
    assert "await " in cell.source
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert results[0].data["text/plain"] == "(True, 5)"


def test_no_cell_writes_terminal_progress(executed: Any) -> None:
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "\r" not in text and "IProgress" not in text
