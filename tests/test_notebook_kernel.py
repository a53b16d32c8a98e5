"""socketkit in a real Jupyter kernel (issue 12; issue 17 item 12): an
interrupt stops a blocking ``recv`` and the kernel lives on; ``progress=True``
draws a notebook bar (no ``\\r`` fragments, no "IProgress not found", tqdm
given its total) for each combination of tqdm and ipywidgets; every result
type renders as HTML, ``PingStats`` with an SVG chart.

One kernel serves the whole module; the progress variants hide tqdm or
ipywidgets from it through ``sys.modules`` (an entry of None makes the
import fail), in the order that never needs an import undone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ipykernel")
pytest.importorskip("jupyter_client")

from _kernel import Kernel, Output, text_of

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    k = Kernel(tmp_path_factory.mktemp("kernel"))
    try:
        # Bars draw at once: these jobs finish well within the usual delay.
        k.ok(
            "import socket, sys, socketkit, socketkit._progress as P, socketkit._notebook as N\n"
            "P._PlainBar.DELAY = 0\nN.HtmlBar.DELAY = 0\n"
            "with socketkit.TcpServer(('127.0.0.1', 0)) as gone:\n"
            "    CLOSED = gone.address\n"
            "TARGETS = [CLOSED] * 300\n"
        )
        yield k
    finally:
        k.close()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_interrupt_stops_a_blocking_recv_and_the_kernel_lives_on(kernel: Kernel) -> None:
    kernel.ok(
        "lsock = socket.create_server(('127.0.0.1', 0))\n"
        "client = socketkit.TcpClient(lsock.getsockname(), timeout=None)\n"
    )
    timings: dict[str, float] = {}

    def interrupt() -> None:
        # The cell printed its marker and goes straight into recv; wait (up
        # to 2 s) until its thread sleeps there, then interrupt.
        end = time.monotonic() + 2.0
        while _state(kernel.pid) != "S" and time.monotonic() < end:
            pass
        timings["sent"] = time.monotonic()
        kernel.km.interrupt_kernel()

    reply, _ = kernel.run("print('receiving', flush=True)\nclient.recv(100)\n", on_start=interrupt)
    took = time.monotonic() - timings["sent"]
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    assert any("recv" in line for line in reply["traceback"]), reply["traceback"]
    assert took < 2.0, took
    assert kernel.km.is_alive()
    # The next cell runs in the same kernel, its state intact.
    out = kernel.ok("client.close(); lsock.close(); 6 * 7")
    assert out[-1]["data"]["text/plain"] == "42"


def _no_terminal_bar(outputs: list[Output]) -> None:
    text = text_of(outputs)
    assert "\r" not in text, text
    assert "IProgress" not in text, text
    assert not [o for o in outputs if o.get("name") == "stderr"], outputs


def _html_bar(outputs: list[Output], total: int) -> None:
    bars = [o for o in outputs if o["output_type"] == "display_data"]
    assert len(bars) == 1, outputs
    html = bars[0]["data"]["text/html"]
    assert "<progress" in html and f"{total}/{total}" in html, html
    assert f"{total}/{total}" in bars[0]["data"]["text/plain"]


def test_progress_without_tqdm_is_one_updating_html_output(kernel: Kernel) -> None:
    kernel.ok("sys.modules['tqdm'] = sys.modules['tqdm.auto'] = None")
    outputs = kernel.ok("r = socketkit.check_many(TARGETS, progress=True)\nlen(r)")
    _no_terminal_bar(outputs)
    _html_bar(outputs, 300)
    # The iterator form and scan too.
    outputs = kernel.ok("n = sum(1 for _ in socketkit.check_iter(TARGETS, progress=True))")
    _no_terminal_bar(outputs)
    _html_bar(outputs, 300)
    outputs = kernel.ok("rep = socketkit.scan('127.0.0.1', f'{CLOSED[1]}-{CLOSED[1] + 99}', progress=True)")
    _no_terminal_bar(outputs)
    _html_bar(outputs, 100)


def test_progress_from_an_awaited_thread_lands_in_its_cell(kernel: Kernel) -> None:
    # The async form until socketkit.aio lands: top-level await of a
    # blocking probe on a worker thread; its bar is drawn from that thread.
    outputs = kernel.ok(
        "import asyncio\nr = await asyncio.to_thread(socketkit.check_many, TARGETS, progress=True)\nlen(r)"
    )
    _no_terminal_bar(outputs)
    _html_bar(outputs, 300)
    assert outputs[-1]["data"]["text/plain"] == "300"


def test_progress_with_tqdm_but_no_ipywidgets_does_not_warn(kernel: Kernel) -> None:
    pytest.importorskip("tqdm")
    kernel.ok("del sys.modules['tqdm'], sys.modules['tqdm.auto']\nsys.modules['ipywidgets'] = None")
    outputs = kernel.ok("r = socketkit.check_many(TARGETS, progress=True)")
    _no_terminal_bar(outputs)
    _html_bar(outputs, 300)


def test_progress_with_tqdm_and_ipywidgets_is_tqdms_widget_with_its_total(kernel: Kernel) -> None:
    pytest.importorskip("tqdm")
    pytest.importorskip("ipywidgets")
    kernel.ok(
        "del sys.modules['ipywidgets']\n"
        "import tqdm.auto\n"
        "TOTALS = []\n"
        "class Recording(tqdm.auto.tqdm):\n"
        "    def __init__(self, *a, **kw):\n"
        "        TOTALS.append(kw.get('total'))\n"
        "        super().__init__(*a, **kw)\n"
        "tqdm.auto.tqdm = Recording\n"
    )
    outputs = kernel.ok("r = socketkit.check_many(TARGETS, progress=True)")
    _no_terminal_bar(outputs)
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1, outputs
    # The bar knew its total when it was drawn first: "0/300", not "0it".
    assert "/300" in widgets[0]["data"]["text/plain"], widgets[0]["data"]
    assert kernel.ok("TOTALS")[-1]["data"]["text/plain"] == "[300]"


def test_every_result_type_renders_as_html(kernel: Kernel) -> None:
    outputs = kernel.ok(
        "import datetime as dt\n"
        "from IPython.display import display\n"
        "from socketkit.tls import CertInfo, TlsInfo\n"
        "with socketkit.TcpServer.echo() as up:\n"
        "    one = socketkit.check(up.address)\n"
        "    many = socketkit.check_many([up.address, CLOSED])\n"
        "    rep = socketkit.scan('127.0.0.1', [up.address[1], CLOSED[1]])\n"
        "    ping = socketkit.tcping(up.address, count=5, interval=0.01)\n"
        "none = socketkit.scan('127.0.0.1', CLOSED[1])\n"
        "t = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)\n"
        "cert = CertInfo('CN=a', 'CN=ca', ['a'], '01', 'AB:CD', t, t, 'EC', 256, 'ecdsa-with-SHA256')\n"
        "tls = TlsInfo('TLSv1.3', 'TLS_AES_128_GCM_SHA256', None, True, None, [cert])\n"
        "for x in (one, many, rep, none, ping, tls, cert):\n"
        "    display(x)\n"
    )
    assert len(outputs) == 7, outputs
    html = [o["data"].get("text/html", "") for o in outputs]
    assert all(h.startswith(("<table", "<div", "<p")) for h in html), html
    assert "<table" in html[0] and "<table" in html[2] and "closed ports not shown" in html[2]
    assert html[3].startswith("<p") and "closed" in html[3]
    assert "<table" in html[4] and "<svg" in html[4]
    assert "TLSv1.3" in html[5] and "CN=a" in html[6]
