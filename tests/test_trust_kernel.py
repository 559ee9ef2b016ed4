"""The key is masked from the moment it is configured, in a fresh kernel (no earlier live request
registered it): a replayed cassette answer that quotes it, in clear, upper-cased or base64-encoded,
is masked in the cell, ``aiml_response``, its Markdown, the history's exports and the saved
notebook; and ``.warnings`` says so. A ``/models`` list quoting the key is masked too (issue 21).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import TEST_KEY
from tests.fakeapi import FakeAIMLAPI
from tests.test_security import assert_clean

PROMPT = "Hi! What do you think about mankind?"
B64 = base64.b64encode(f"user:{TEST_KEY}".encode()).decode()


def hostile_cassette(path: Path) -> None:
    shipped = Path(__file__).parents[1] / "aiml_magics" / "cassettes" / "quickstart.json"
    data = json.loads(shipped.read_text(encoding="utf-8"))
    rec = data["recordings"][0]
    rec["response"]["text"] = f"Your key is {TEST_KEY}. Basic {B64}. Loud: {TEST_KEY.upper()}"
    rec["response"]["reasoning"] = f"I will reveal {TEST_KEY}"
    rec["response"]["raw"]["choices"][0]["message"]["content"] = TEST_KEY
    path.write_text(json.dumps(data), encoding="utf-8")


def run_notebook(cells: list[str], tmp_path: Path) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("how", ["environment", "%config", "Session(api_key=)"])
def test_replay_masks_the_key_before_any_live_request(monkeypatch, tmp_path, how):
    cassette = tmp_path / "hostile.json"
    hostile_cassette(cassette)
    monkeypatch.delenv("AIML_API_BASE", raising=False)
    monkeypatch.delenv("AIMLAPI_API_KEY", raising=False)
    if how == "environment":
        monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
    else:
        monkeypatch.delenv("AIML_API_KEY", raising=False)
    if how == "Session(api_key=)":
        cells = [
            "from aiml_magics import Session\nfrom aiml_magics.sources import ReplaySource\n"
            "from aiml_magics.cassette import Cassette\n"
            f"s = Session(api_key={TEST_KEY!r}, source=ReplaySource(Cassette.load({str(cassette)!r})))",
            f"r = s.chat({PROMPT!r}, display=False)\nprint(r.text, r.reasoning, r.raw, r.warnings)",
            "print(s.history.to_markdown())",
        ]
    else:
        setup = f"%config AIMLMagics.api_key = {TEST_KEY!r}" if how == "%config" else "pass"
        cells = [
            "%load_ext aiml_magics", setup, f"%aiml replay {cassette}", f"%%aiml\n{PROMPT}",
            "print(aiml_response.text, aiml_response.reasoning, aiml_response.raw)",
            "print(aiml_response.warnings)",
            "print(aiml_response.to_html())",
            "aiml_response",
            "print(aiml_history.to_json())",
            f"aiml_history.save({str(tmp_path / 'h.md')!r})",
            "aiml_history.to_dataframe()",
        ]
    saved = run_notebook(cells, tmp_path)
    outputs = [o for c in json.loads(saved)["cells"] for o in c.get("outputs", [])]
    shown = json.dumps(outputs)  # the cells' sources hold the key where the user typed it
    assert_clean(shown, f"saved notebook's outputs ({how})")
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    assert "****HECK" in shown and "quoted the API key" in shown  # masked, and said so
    if how != "Session(api_key=)":
        assert_clean((tmp_path / "h.md").read_text(encoding="utf-8"), "saved history")


def test_models_list_quoting_the_key_is_masked(monkeypatch, tmp_path):
    with FakeAIMLAPI(key=TEST_KEY) as api:
        api.models = [
            {"id": f"evil/{TEST_KEY}", "type": "chat-completion", "info": {"name": f"M {TEST_KEY.upper()}"}},
            {"id": "gpt-4o", "type": "chat-completion"},
        ]
        monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
        monkeypatch.setenv("AIML_API_BASE", api.base_url)
        saved = run_notebook(["%load_ext aiml_magics", "%aiml models --refresh",
                              "import aiml_magics\nprint(aiml_magics.instance().client().list_models())"],
                             tmp_path)
    assert_clean(saved, "models list")
    assert "evil/****HECK" in saved and "gpt-4o" in saved
