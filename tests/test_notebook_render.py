"""Jupyter presentation without a kernel (issue 12): the inline SVG chart
of ``PingStats``, the matplotlib plots and their ImportError, which bar
``progress=True`` picks where, and the HTML bar's frames."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import socketkit
from socketkit import _notebook, _progress, _svg
from socketkit.results import CheckResult, PingStats, ScanReport

SVG = "{http://www.w3.org/2000/svg}"


def _scan_report() -> ScanReport:
    rows = [
        CheckResult("127.0.0.1", "127.0.0.1", 22, "tcp", "open", 0.1, None),
        CheckResult("127.0.0.1", "127.0.0.1", 23, "tcp", "closed", 0.05, None),
        CheckResult("127.0.0.1", "127.0.0.1", 24, "tcp", "filtered", None, "timed out"),
    ]
    return ScanReport(rows, ports=3, elapsed=0.5)


def test_latency_svg_is_well_formed_with_a_mark_per_ping() -> None:
    svg = _svg.latency_svg([0.1, None, 0.3, 0.2], title="a <b> & c")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f"{SVG}circle")) == 3
    assert svg.count(": lost</title>") == 1
    # A lost ping breaks the line: the replies after it form the only run of two.
    assert len(root.findall(f"{SVG}polyline")) == 1
    assert "a &lt;b&gt; &amp; c" in svg
    assert _svg.latency_svg([]) == ""


@pytest.mark.parametrize("rtts", [[0.5], [None, None], [0.0, 0.0]])
def test_latency_svg_edge_cases(rtts: list[float | None]) -> None:
    root = ET.fromstring(_svg.latency_svg(rtts))
    text = "".join(root.itertext())
    assert ("no replies" in text) == all(r is None for r in rtts)


def test_pingstats_html_puts_the_chart_beside_the_numbers() -> None:
    stats = PingStats("<h>", "127.0.0.1", 80, [0.1, None, 0.2])
    html = stats._repr_html_()
    assert html.index("<table") < html.index("<svg")
    assert "&lt;h&gt;" in html and "<h>" not in html
    assert "<td>0.150</td>" in html  # avg, rounded as every HTML float
    # No pings: the numbers alone.
    assert "<svg" not in PingStats("h", "127.0.0.1", 80, [])._repr_html_()


def test_plots_draw_with_matplotlib() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = PingStats("h", "127.0.0.1", 80, [0.1, None, 0.2, 0.3])
    ax = stats.plot()
    xs = [list(line.get_xdata()) for line in ax.get_lines()]
    assert [1, 3, 4] in xs and [2] in xs  # replies, and the lost ping
    assert ax.get_ylim()[0] == 0
    ax = _scan_report().plot()
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["open (1)", "filtered (1)"]
    ax = _scan_report().plot(closed=True)
    assert "closed (1)" in ax.get_legend_handles_labels()[1]
    # Onto axes of the caller's own figure.
    _, mine = plt.subplots()
    assert stats.plot(ax=mine) is mine
    plt.close("all")


def test_plots_without_matplotlib_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"PingStats.plot\(\) needs matplotlib.*socketkit\[plot\]"):
        PingStats("h", "127.0.0.1", 80, [0.1]).plot()
    with pytest.raises(ImportError, match=r"ScanReport.plot\(\) needs matplotlib.*socketkit\[plot\]"):
        _scan_report().plot()


def test_not_a_notebook_outside_a_kernel() -> None:
    # pytest is no kernel, whether or not IPython was imported.
    assert not _notebook.in_notebook()


@pytest.mark.parametrize(
    ("notebook", "widgets", "tqdm", "bar"),
    [
        (True, True, True, "_TqdmBar"),
        (True, False, True, "HtmlBar"),
        (True, True, False, "HtmlBar"),
        (True, False, False, "HtmlBar"),
        (False, False, True, "_TqdmBar"),
        (False, False, False, "_PlainBar"),
    ],
)
def test_the_bar_progress_true_picks(
    monkeypatch: pytest.MonkeyPatch, notebook: bool, widgets: bool, tqdm: bool, bar: str
) -> None:
    monkeypatch.setattr(_progress, "in_notebook", lambda: notebook)
    monkeypatch.setattr(_progress, "widgets_available", lambda: widgets)
    if not tqdm:
        monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    elif bar == "_TqdmBar":
        pytest.importorskip("tqdm")
    p = _progress.make_progress(True, "scan")
    assert type(p.callback).__name__ == bar
    p.close()


def test_tqdm_gets_its_total_from_the_start(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    pytest.importorskip("tqdm")
    made: list[dict[str, Any]] = []
    auto = sys.modules.get("tqdm.auto") or __import__("tqdm.auto", fromlist=["tqdm"])

    class Recording(auto.tqdm):  # type: ignore[misc, name-defined]
        def __init__(self, *a: Any, **kw: Any) -> None:
            made.append(kw)
            super().__init__(*a, **kw)

    monkeypatch.setattr(auto, "tqdm", Recording)
    monkeypatch.setattr(_progress._PlainBar, "DELAY", 0.0)
    monkeypatch.setattr(_progress, "in_notebook", lambda: False)
    socketkit.check_many([("127.0.0.1", 1)] * 20, progress=True)
    assert [kw["total"] for kw in made] == [20]
    assert "20/20" in capsys.readouterr().err
    # One target: no bar at all.
    made.clear()
    socketkit.check_many([("127.0.0.1", 1)], progress=True)
    assert made == []


def test_html_bar_frames_and_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[dict[str, str]] = []
    bar = _notebook.HtmlBar("scan")
    monkeypatch.setattr(bar, "_show", shown.append)
    monkeypatch.setattr(bar, "DELAY", 0.0)
    monkeypatch.setattr(bar, "INTERVAL", 3600.0)
    for done in range(0, 1001, 10):
        bar(done, 1000)
    # The first frame, then nothing until the last: one update an INTERVAL.
    assert len(shown) == 2
    assert "<progress" in shown[0]["text/html"] and shown[0]["text/plain"].startswith("scan: 0/1000")
    assert "1000/1000 in " in shown[1]["text/plain"]
    bar.close()
    assert len(shown) == 2  # already final
    # Stopped early (Ctrl-C): close() says where.
    bar = _notebook.HtmlBar("scan")
    monkeypatch.setattr(bar, "_show", shown.append)
    monkeypatch.setattr(bar, "DELAY", 0.0)
    bar(0, 50)
    bar(20, 50)
    bar.close()
    assert shown[-1]["text/plain"].startswith("scan: 20/50 in ") and "(stopped)" in shown[-1]["text/plain"]
    # Tiny and quick jobs draw nothing.
    bar = _notebook.HtmlBar("check")
    monkeypatch.setattr(bar, "_show", shown.append)
    n = len(shown)
    bar(0, 1)
    bar(1, 1)
    bar.close()
    assert len(shown) == n
    quick = _notebook.HtmlBar("check")
    monkeypatch.setattr(quick, "_show", shown.append)
    quick(5, 10)
    quick.close()
    assert len(shown) == n


def test_progress_for_closes_the_bar_however_the_work_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    # The hook socketkit.aio uses: a cancelled await still closes the bar.
    import asyncio

    closed: list[str] = []
    monkeypatch.setattr(_progress, "in_notebook", lambda: True)
    monkeypatch.setattr(_progress, "widgets_available", lambda: False)
    monkeypatch.setattr(_notebook.HtmlBar, "close", lambda self: closed.append(self.desc))

    async def work() -> None:
        with _progress.progress_for(True, "scan") as cb:
            assert isinstance(cb, _notebook.HtmlBar)
            await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.ensure_future(work())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert closed == ["scan"]
    with _progress.progress_for(None, "scan") as cb:
        assert cb is None
