"""Issue 21 as a person sees it in JupyterLab: a comparison with a huge answer shows a clipped
column that says so, a model id with an escape character shows it visibly in its header, and a
tool-call view folds each call above the answer. Screenshots: artifacts/screenshots/bounds-*.png.
"""

from __future__ import annotations

import pytest

from tests.fakeapi import Reply, ToolModel
from tests.test_browser import SHOTS, Session, _run_new_cell, lab, server  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def test_bounded_comparison_and_tool_calls_as_a_person_sees_them(lab: Session):  # noqa: F811
    setup = _run_new_cell(
        lab,
        'import os\nos.environ.setdefault("AIML_API_KEY", os.environ.get("AIML_BROWSER_TEST_KEY", ""))\n'
        "%aiml live",
    )
    setup.locator('.jp-OutputArea-output:has-text("Live: answers come from")').wait_for()
    lab.api.default = lambda rec: Reply(
        content=("All work and no play. " * 6000) if rec.json["model"] == "big-model" else "A short answer.",
        chunk_chars=4000,
    )
    source = 'import aiml_magics\naiml_magics.compare("Write", ["big-model", "evil\\x1b[2Jid"])'
    _run_new_cell(lab, source)
    cell = lab.page.locator('.jp-Notebook .jp-Cell:has-text("aiml_magics.compare(")').last
    try:
        cell.locator('.jp-OutputArea sub:has-text("not added to the conversation")').wait_for(timeout=60_000)
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        lab.page.screenshot(path=str(SHOTS / "bounds-debug.png"))
    columns = cell.locator(".jp-OutputArea .aiml-compare-column")
    assert columns.count() == 2
    heads = [columns.nth(i).locator(".aiml-compare-model").inner_text().strip() for i in range(2)]
    assert heads == ["big-model", "evil\\x1b[2Jid"]  # the escape shown, not acted on
    assert columns.nth(1).locator(':text("no answer text")').count() == 0
    note = columns.nth(0).locator('sub:has-text("clipped: 50,000 of 132,000 characters shown")')
    assert note.is_visible()
    cell.evaluate("e => e.scrollIntoView({block: 'start'})")
    SHOTS.mkdir(parents=True, exist_ok=True)
    lab.page.screenshot(path=str(SHOTS / "bounds-compare.png"))
    note.scroll_into_view_if_needed()
    lab.page.screenshot(path=str(SHOTS / "bounds-compare-note.png"))

    lab.api.default = ToolModel(calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})])
    _run_new_cell(
        lab,
        "def get_weather(city: str) -> str:\n"
        '    """The current weather in a city."""\n'
        '    return f"Sunny in {city}, 21 °C"\n'
        "aiml_magics.chat('Weather in Paris and Oslo?', tools=[get_weather])",
    )
    tools = lab.page.locator('.jp-Notebook .jp-Cell:has-text("Weather in Paris and Oslo")').last
    tools.locator('.jp-OutputArea-output:has-text("get_weather")').first.wait_for(timeout=60_000)
    tools.locator('.jp-OutputArea-output:has-text("Sunny in Oslo")').first.wait_for(timeout=60_000)
    tools.evaluate("e => e.scrollIntoView({block: 'start'})")
    lab.page.screenshot(path=str(SHOTS / "bounds-tools.png"))
    assert lab.page.locator("script").filter(has_text="alert").count() == 0
    lab.api.default = Reply(echo=True)
