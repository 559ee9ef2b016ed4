"""The shipped notebooks, executed top to bottom in a real kernel (nbclient), offline and live.

Offline means no key in the environment: the top cell picks replay. The base URL still points at the
loopback fake service, so anything that tried to reach a service would reach only 127.0.0.1 (and the
fake records it); the chat endpoint must receive nothing.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from tests.conftest import KEY_VARS, ROOT, TEST_KEY
from tests.kernels import run_notebook, run_notebook_twice

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"
COLAB_CELL = "import importlib.util\n"  # the quickstart's first cell: Google Colab only
# The one error a notebook shows on purpose (caught and shown, so Run All goes on).
DELIBERATE = {"errors.ipynb": ["try:\n    average(scores)\nexcept ZeroDivisionError:\n"
                               "    get_ipython().showtraceback()  # the deliberate error, shown; "
                               "Run All goes on"]}
KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_-]{12,}|[0-9a-f]{32})\b")
REQUEST_ID = re.compile(r"aiml-[0-9a-f]{8}-")
SECONDS = re.compile(r"\(\d+\.\d{3} s\)")  # a tool call's run time, printed by tools.ipynb
# The wall time in a footer ("no model · 0.1 s · ... · offline echo"): measured, so a loaded
# machine may show 0.1 s where an idle one shows 0.0 s.
FOOTER_SECONDS = re.compile(r"(\\u00b7|·) \d+(?:\.\d+)? s (\\u00b7|·)")
STORE_SIZE = re.compile(r"(\.db \()[0-9.,]+ [KMG]?B")


def execute(path: Path, monkeypatch, api, tmp_path, key: str | None) -> nbformat.NotebookNode:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIML_API_BASE", api.base_url)
    if key:
        monkeypatch.setenv("AIML_API_KEY", key)
    nb = run_notebook(nbformat.read(path, as_version=4), tmp_path, save_as=path.name)
    assert TEST_KEY not in (tmp_path / path.name).read_text(encoding="utf-8")
    return nb


def execute_twice(path: Path, monkeypatch, api, tmp_path) -> tuple:
    """Run All, then Run All again in the same kernel (a teacher's rehearsal, then the class)."""
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIML_API_BASE", api.base_url)
    return run_notebook_twice(nbformat.read(path, as_version=4), tmp_path)


def seen(nb) -> list[tuple[str, list[str]]]:
    """What each code cell shows, with what is meant to differ between runs taken out: widget
    model ids, execution counts, map()'s request ids (unique per request, by design), the
    store's size in ``%aiml config`` (every exchange of the first run is stored, by design), a tool
    call's run time, a footer's wall time, and how a cell's printed text was split into messages."""
    out = []
    for c in code_cells(nb):
        shown = []
        for o in c.outputs:
            if o.output_type == "stream":
                prefix = f"{o.name}: "
                if shown and shown[-1].startswith(prefix):  # one print may arrive in two pieces
                    shown[-1] += o.text
                else:
                    shown.append(prefix + o.text)
            elif o.output_type == "error":
                shown.append(f"error: {o.ename}: {o.evalue}")
            else:
                data = {k: v for k, v in o.get("data", {}).items() if k != WIDGET}
                shown.append(json.dumps(data, sort_keys=True))
        shown = [STORE_SIZE.sub(r"\1<size>", REQUEST_ID.sub("aiml-<batch>-", s)) for s in shown]
        shown = [FOOTER_SECONDS.sub(r"\1 <seconds> s \2", SECONDS.sub("(<seconds> s)", s))
                 for s in shown]
        out.append((c.source, shown))
    return out


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def cell(nb, startswith: str):
    (found,) = [c for c in code_cells(nb) if c.source.startswith(startswith)]
    return found


def failures(nb) -> list[str]:
    """Sources of cells that failed: an error output, or a UsageError/traceback on stderr."""
    bad = []
    for c in code_cells(nb):
        for out in c.outputs:
            stderr = out.output_type == "stream" and out.name == "stderr"
            if out.output_type == "error" or (stderr and ("Error" in out.text or "Traceback" in out.text)):
                bad.append(c.source)
                break
    return bad


def final_markdown(c) -> str:
    """What the cell finally shows: the last state of each display, the non-empty Markdown ones."""
    shown: dict[str, str] = {}
    for i, out in enumerate(c.outputs):
        if out.output_type in ("display_data", "update_display_data"):
            ident = out.get("transient", {}).get("display_id") or f"anon-{i}"
            shown[ident] = out.data.get("text/markdown", "")
    visible = [md for md in shown.values() if md.strip()]
    assert len(visible) == 1, visible
    return visible[0]


def stdout(c) -> str:
    return "".join(o.text for o in c.outputs if o.output_type == "stream" and o.name == "stdout")


# -- the saved files ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_notebook_is_clean(path):
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert "widgets" not in nb.metadata
    for c in code_cells(nb):
        assert c.outputs == [] and c.execution_count is None, c.source
        assert not c.metadata.get("execution"), c.source
    assert TEST_KEY not in text and not KEYLIKE.search(text)
    # Each notebook starts by choosing replay or live from the environment (after the quickstart's
    # cell for Google Colab, which does nothing elsewhere).
    first_code = [c.source for c in code_cells(nb) if not c.source.startswith(COLAB_CELL)][:2]
    assert first_code[0] == "%reload_ext aiml_magics"  # Run All again starts afresh
    assert "AIML_API_KEY" in first_code[1] and "%aiml replay" in first_code[1]
    assert "%aiml live" in first_code[1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_run_all_twice_in_one_kernel_shows_the_same(path, monkeypatch, api, tmp_path):
    first, second = execute_twice(path, monkeypatch, api, tmp_path)
    expected = DELIBERATE.get(path.name, [])
    assert failures(first) == expected and failures(second) == expected
    if path.name != "errors.ipynb":  # its context is what ran: the second run sees the first too
        for (source, once), (_, again) in zip(seen(first), seen(second), strict=True):
            assert again == once, source
    assert api.chat_requests == []


def test_notebooks_are_the_expected_five():
    assert [p.name for p in NOTEBOOKS] == ["data-exploration.ipynb", "errors.ipynb", "images.ipynb",
                                            "quickstart.ipynb", "tools.ipynb"]


def test_tools_offline(monkeypatch, api, tmp_path):
    nb = execute(ROOT / "notebooks" / "tools.ipynb", monkeypatch, api, tmp_path, key=None)
    assert failures(nb) == []
    assert api.requests == []  # replay: nothing sent
    assert "Replay: answers come from tools.json" in stdout(cell(nb, "import os"))
    dry = cell(nb, "%%aiml --tools get_weather --dry-run").outputs[0].data["text/markdown"]
    assert "Dry run: nothing was sent." in dry and "The current weather in a city." in dry
    md = final_markdown(cell(nb, "%%aiml --tools get_weather\n"))
    assert md.index("<summary>get&#95;weather(city='Paris') → Sunny, 21 °C</summary>") < md.index(
        "It is sunny in Paris right now")
    assert "1 tool call: recorded results, nothing re-run" in md
    kept = stdout(cell(nb, "for call in aiml_response.tool_calls"))
    assert "get_weather {'city': 'Paris'} → Sunny, 21 °C" in kept
    assert "functions run here: [] · source: replayed" in kept
    python = stdout(cell(nb, "from aiml_magics import chat"))
    assert "It is sunny in Paris right now" in python
    assert "1 tool call: get_weather {'city': 'Paris'}" in python


# -- offline: replay and the echo ------------------------------------------------------------------


def test_errors_offline(monkeypatch, api, tmp_path):
    """The deliberate error is the only one shown, and it is explained without sending anything."""
    nb = execute(ROOT / "notebooks" / "errors.ipynb", monkeypatch, api, tmp_path, key=None)
    assert failures(nb) == DELIBERATE["errors.ipynb"]  # shown, and Run All went on
    assert api.requests == []
    # Read as the reader sees it: Markdown's escapes (``&#91;&#93;`` for ``[]``) undone.
    dry = html.unescape("".join(o.data["text/markdown"]
                                for o in cell(nb, "%aiml explain --dry-run").outputs))
    assert "Dry run: nothing was sent." in dry and "ZeroDivisionError: division by zero" in dry
    assert "(defines average, in the traceback)" in dry and "scores = []" in dry
    (explained,) = [c for c in code_cells(nb) if c.source == "%aiml explain"]
    md = final_markdown(explained)
    assert "Offline echo" in md and "Notebook context" in md
    assert "no corrected cell" in stdout(cell(nb, "%aiml fix"))
    context = "".join(o.data["text/markdown"] for o in cell(nb, "%%aiml --context 3").outputs)
    assert "Why could `scores` be empty" in context and "def average" in context


def test_quickstart_offline(monkeypatch, api, tmp_path):
    nb = execute(ROOT / "notebooks" / "quickstart.ipynb", monkeypatch, api, tmp_path, key=None)
    assert failures(nb) == []
    assert api.requests == []  # not even GET /models: the panel uses the built-in list
    assert "Replay: answers come from quickstart.json" in stdout(cell(nb, "import os\n\nif"))
    md = final_markdown(cell(nb, "%%aiml\nHi! What do you think about mankind?"))
    assert md.index("<details>") < md.index("<summary>Reasoning") < md.index("</details>")
    assert md.index("</details>") < md.index("As an AI, I don’t have feelings")
    assert "#### 1. The Ultimate Paradox" in md and "*   **Creation vs. Destruction**" in md
    assert "2,002 credits" in md and md.rstrip().endswith("replayed</sub>")
    inspected = stdout(cell(nb, 'print("source:", aiml_response.source)'))
    assert "source: replayed" in inspected and "credits used: 2002\n" in inspected  # an int
    assert "reasoning_tokens=450" in inspected
    echo = final_markdown(cell(nb, "%%aiml\nSum that up in one sentence."))
    assert echo.startswith("**Offline echo: no language model was asked.**")
    # Code spans are published as our own <code> elements (their text verbatim, never markup).
    assert "<code>temperature</code> = <code>0.2</code>" in echo and "1 earlier turn (3 messages" in echo
    assert echo.rstrip().endswith("offline echo</sub>")
    assert stdout(cell(nb, "sent = aiml_response.request")).startswith("offline echo · 0.2 · 3 messages")
    compared = final_markdown(cell(nb, "%%aiml --compare"))  # one display: three columns
    assert compared.count('<div class="aiml-compare-column"') == 3
    assert compared.count("**Offline echo:** no model was asked.") == 3
    # Each column says what is particular to its model, not the same echo three times.
    assert "Anthropic" in compared and "OpenAI" in compared and "DeepSeek" in compared
    assert compared.count("accepts 0 to 1 (most models: 0 to 2)") == 1
    assert compared.count("<sub>first token") == 3 and "not added to the conversation" in compared
    table = stdout(cell(nb, "for row in aiml_response.records()")).splitlines()
    assert [line.split()[0] for line in table[:3]] == [
        "gpt-4o-mini", "anthropic/claude-sonnet-4.5", "deepseek/deepseek-chat"
    ]
    assert table[3] == "turns in the conversation: 1"  # the comparison added no turn
    snippet = cell(nb, "%aiml snippet").outputs[0].data["text/markdown"]
    assert "requests.post(" in snippet and '"temperature": 0.2' in snippet
    assert "sent nothing" in stdout(cell(nb, "import os\n\nimport requests"))
    (view,) = [o.data[WIDGET] for o in cell(nb, "%aiml panel").outputs if WIDGET in o.get("data", {})]
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    assert view["model_id"] in state
    sliders = {
        m["state"]["description"]: m["state"]["value"]
        for m in state.values()
        if m["model_name"] == "FloatSliderModel"
    }
    assert sliders["temperature"] == 0.2  # the %config cell after the panel moved its slider


def test_data_exploration_offline(monkeypatch, api, tmp_path):
    nb = execute(ROOT / "notebooks" / "data-exploration.ipynb", monkeypatch, api, tmp_path, key=None)
    assert failures(nb) == []
    assert api.chat_requests == []
    (answer,) = [c for c in code_cells(nb) if c.source.startswith("%%aiml")]
    assert final_markdown(answer).rstrip().endswith("offline echo</sub>")  # labelled
    # {reviews} went into the prompt as a table; the JSON-like braces stayed as typed.
    sent = stdout(cell(nb, "sent = summary"))
    assert "| 101 | kettle | 5 | Boils in two minutes" in sent and '{"json": true}' in sent
    # map(): a progress widget, then one row per review, in order, with the review ids.
    mapped = cell(nb, "import aiml_magics")
    assert any(WIDGET in o.get("data", {}) for o in mapped.outputs)
    assert "Batch(6 items: 6 answered, 0 failed" in mapped.outputs[-1]["data"]["text/plain"]
    joined = cell(nb, "answers = batch").outputs[-1]["data"]["text/html"]
    ids = re.findall(r"<th>(10[1-6])</th>", joined)
    assert ids == ["101", "102", "103", "104", "105", "106"]
    assert joined.count("offline echo</td>") == 6 and joined.count("aiml-") == 6
    # Offline, each cell is one short line with what its row filled in.
    assert "<td>offline echo: …kettle? Review: Boils in two mi...</td>" in joined
    assert "<td>offline echo: …backpack? Review: Roomy, but th...</td>" in joined
    # The schema: placeholders of its shape validate, so the columns fill, labelled offline.
    scored = cell(nb, "verdict = {").outputs[-1]["data"]["text/html"]
    assert re.findall(r"<th>(10[1-6])</th>", scored) == ids
    assert scored.count("<td>positive</td>") == 6 and scored.count("<td>offline echo</td>") == 6
    assert "does not match" not in scored
    history = cell(nb, "aiml_history").outputs[-1]["data"]["text/html"]
    assert history.count("offline echo") == 1


def test_images_offline(monkeypatch, api, tmp_path):
    pytest.importorskip("matplotlib")
    import base64
    import io

    from PIL import Image

    nb = execute(ROOT / "notebooks" / "images.ipynb", monkeypatch, api, tmp_path, key=None)
    assert failures(nb) == []
    assert api.requests == []  # replay: not even GET /models for the vision check
    (png,) = [o.data["image/png"] for o in cell(nb, "%matplotlib inline").outputs
              if "image/png" in o.get("data", {})]
    with Image.open(io.BytesIO(base64.b64decode(png))) as img:
        size = f"{img.width}×{img.height} PNG"
    echo = final_markdown(cell(nb, "%%aiml -m gpt-4o --image"))
    assert echo.startswith("**Offline echo: no language model was asked.**")
    assert f"image {size}" in echo and "1 image," in echo  # the echo describes the plot it got
    shown = json.dumps(cell(nb, "aiml_response.request").outputs, ensure_ascii=False)
    assert f"[image {size}" in shown and "base64" not in shown
    printed = stdout(cell(nb, "import numpy as np"))
    assert printed.startswith("offline echo") and "PNG" in printed and "60×40 PNG" in printed
    assert "base64" not in printed


# -- live: the same notebooks against the loopback service ----------------------------------------


def test_quickstart_live_against_the_fake_service(monkeypatch, api, tmp_path):
    nb = execute(ROOT / "notebooks" / "quickstart.ipynb", monkeypatch, api, tmp_path, key=TEST_KEY)
    assert failures(nb) == []
    assert "Live: answers come from" in stdout(cell(nb, "import os\n\nif"))
    first, follow_up, *compared, plain = [r.json for r in api.chat_requests]
    assert sorted(b["model"] for b in compared) == [
        "anthropic/claude-sonnet-4.5", "deepseek/deepseek-chat", "gpt-4o-mini"
    ]
    assert all(b["messages"] == compared[0]["messages"] and len(b["messages"]) == 5 for b in compared)
    assert first["messages"] == [{"role": "user", "content": "Hi! What do you think about mankind?"}]
    assert first["stream"] is True and "temperature" not in first
    assert follow_up["temperature"] == 0.2 and len(follow_up["messages"]) == 3
    assert follow_up["messages"][1]["content"] == "echo: Hi! What do you think about mankind?"
    assert "stream" not in plain and plain["model"] == "baidu/ernie-5.0"
    md = final_markdown(cell(nb, "%%aiml\nHi! What do you think about mankind?"))
    assert "echo: Hi! What do you think about mankind?" in md and "replayed" not in md
    assert "echo: Hi!" in stdout(cell(nb, "import os\n\nimport requests"))
    assert "****HECK" in json.dumps(cell(nb, "%aiml config").outputs)


# -- Google Colab's first cell --------------------------------------------------------------------

def _colab_stand_in(tmp_path: Path, secret: str | None) -> Path:
    """A ``google.colab.userdata`` like Colab's: ``get(name)`` returns the secret, or raises when there
    is none (Colab raises SecretNotFoundError). A namespace package, so nothing else named google moves."""
    root = tmp_path / "colab-stand-in"
    (root / "google" / "colab").mkdir(parents=True)
    (root / "google" / "colab" / "__init__.py").write_text("", encoding="utf-8")
    (root / "google" / "colab" / "userdata.py").write_text(
        f"SECRET = {secret!r}\n\n\nclass SecretNotFoundError(Exception):\n    pass\n\n\n"
        "def get(key):\n    if key != 'AIML_API_KEY' or SECRET is None:\n"
        "        raise SecretNotFoundError(key)\n    return SECRET\n",
        encoding="utf-8",
    )
    return root


def test_quickstart_first_cell_does_nothing_outside_colab(monkeypatch, api, tmp_path):
    nb = execute(ROOT / "notebooks" / "quickstart.ipynb", monkeypatch, api, tmp_path, key=None)
    first = cell(nb, COLAB_CELL)
    assert code_cells(nb)[0] is first and first.outputs == []
    assert "Replay: answers come from" in stdout(cell(nb, "import os\n\nif"))


def test_quickstart_takes_the_key_from_colab_secrets_and_never_shows_it(monkeypatch, api, tmp_path):
    stand_in = _colab_stand_in(tmp_path, TEST_KEY)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(stand_in), os.environ["PYTHONPATH"]]))
    nb = execute(ROOT / "notebooks" / "quickstart.ipynb", monkeypatch, api, tmp_path, key=None)
    assert failures(nb) == []
    assert cell(nb, COLAB_CELL).outputs == []
    assert "Live: answers come from" in stdout(cell(nb, "import os\n\nif"))
    assert api.chat_requests and all(
        r.headers.get("authorization") == f"Bearer {TEST_KEY}" for r in api.chat_requests
    )
    assert TEST_KEY not in nbformat.writes(nb)  # every output, not only the saved file


def test_quickstart_without_a_colab_secret_replays(monkeypatch, api, tmp_path):
    stand_in = _colab_stand_in(tmp_path, None)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(stand_in), os.environ["PYTHONPATH"]]))
    nb = execute(ROOT / "notebooks" / "quickstart.ipynb", monkeypatch, api, tmp_path, key=None)
    assert failures(nb) == []
    assert "No AIML_API_KEY in Colab's secrets" in stdout(cell(nb, COLAB_CELL))
    assert "Replay: answers come from" in stdout(cell(nb, "import os\n\nif"))
    assert api.chat_requests == []
