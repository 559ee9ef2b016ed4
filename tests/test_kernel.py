"""``%%aiml`` in a real Jupyter kernel (ipykernel over ZMQ, executed by nbclient)."""

from __future__ import annotations

import json

import nbformat

from tests.conftest import TEST_KEY
from tests.fakeapi import Error, Reply
from tests.kernels import run_cells


def _execute(cells: list[str], monkeypatch, api, tmp_path) -> nbformat.NotebookNode:
    monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
    monkeypatch.setenv("AIML_API_BASE", api.base_url)
    nb = run_cells(cells, tmp_path, save_as="run.ipynb")
    assert TEST_KEY not in (tmp_path / "run.ipynb").read_text(encoding="utf-8")
    return nb


def test_cell_streams_into_a_real_kernel(monkeypatch, api, tmp_path):
    api.queue(
        Reply(content="## Humans\n\n- curious\n- kind", reasoning="Considering...", delay=0.005),
        Reply(content="Follow-up answer."),
        Error(403),
    )
    nb = _execute(
        [
            "%load_ext aiml_magics",
            "%%aiml\nHi! What do you think about mankind?",
            "%%aiml --temperature 0\nAnd in one line?",
            "print(aiml_response.text, aiml_response.usage.total_tokens, aiml_response.credits_used)",
            "%%aiml\nthis one fails",
            "%%aiml --top-p 7\nrefused before sending",
        ],
        monkeypatch,
        api,
        tmp_path,
    )
    answer = nb.cells[1].outputs
    assert all(o.output_type in ("display_data", "update_display_data") for o in answer)
    visible = [o for o in answer if o.get("data", {}).get("text/markdown", "").strip()]
    assert len(visible) == 1
    final = visible[0].data["text/markdown"]
    assert "## Humans" in final and "- curious" in final and "<details>" in final
    assert "Considering..." in final and "2,002 credits" in final
    assert api.chat_requests[1].json["temperature"] == 0
    assert [m["role"] for m in api.chat_requests[1].json["messages"]] == ["user", "assistant", "user"]
    printed = nb.cells[3].outputs[0].text
    assert printed.startswith("Follow-up answer.") and "2002.0" in printed
    error = nb.cells[4].outputs[-1]
    assert error.output_type == "error" and error.ename == "CreditsError"  # an AIMLError subclass
    assert len(error.traceback) == 1 and "403" in error.traceback[0]
    refused = nb.cells[5].outputs[-1]
    assert refused.ename == "ParameterError" and "top_p = 7" in refused.traceback[0]
    assert len(api.chat_requests) == 3
    assert TEST_KEY not in json.dumps(nb)


def test_answers_from_code_in_one_cell_are_all_kept(monkeypatch, api, tmp_path):
    """A %%aiml cell owns its outputs and ends with one; a loop calling the magic from code must
    not wipe its earlier answers (or anything else the cell printed)."""
    long = "\n\n".join(f"Block {i} " + "text " * 30 for i in range(8))
    api.queue(
        Reply(content=long, chunk_chars=16, delay=0.01),
        Reply(content="first of loop\n\n" + long, chunk_chars=16, delay=0.01),
        Reply(content="second\n\n" + long, chunk_chars=16, delay=0.01),
    )
    nb = _execute(
        [
            "%load_ext aiml_magics",
            "%%aiml\nlong answer",
            "print('before')\n"
            "for t in (0, 1):\n"
            "    get_ipython().run_cell_magic('aiml', f'-t {t}', 'question')\n"
            "print('after')",
        ],
        monkeypatch,
        api,
        tmp_path,
    )
    owned = nb.cells[1].outputs
    assert len(owned) == 1 and "Block 7" in owned[0].data["text/markdown"]
    shown = [
        o.data.get("text/markdown", "") if o.output_type == "display_data" else o.get("text", "")
        for o in nb.cells[2].outputs
    ]
    text = "\n".join(shown)
    for piece in ("before", "first of loop", "second", "after"):
        assert piece in text, (piece, text)
    assert [r.json["temperature"] for r in api.chat_requests[1:]] == [0, 1]


def test_image_alone_sends_the_inline_plot_of_the_cell_above(monkeypatch, api, tmp_path):
    """``--image`` with no value: the last image the notebook displayed (here the matplotlib
    inline backend's PNG of the cell above) is what the fake receives, byte for byte."""
    import base64
    import hashlib

    import pytest

    pytest.importorskip("matplotlib")
    pytest.importorskip("PIL")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    api.queue(Reply(echo=True), Reply(echo=True))
    nb = _execute(
        [
            "%load_ext aiml_magics",
            "%%aiml -m gpt-4o --image\nNothing has been plotted yet: refused.",
            "%matplotlib inline\nimport matplotlib.pyplot as plt\n"
            "plt.bar(['a', 'b', 'c'], [3, 1, 2]); plt.title('three bars')",
            "%%aiml -m gpt-4o --image\nWhat does the plot above show?",
            "from IPython.display import Image, display\n"
            f"display(Image(data={_tiny_png()!r}))",
            "%%aiml -m gpt-4o --image\nAnd this one?",
        ],
        monkeypatch,
        api,
        tmp_path,
    )
    refused = nb.cells[1].outputs[-1]
    assert refused.output_type == "error" and "none has been displayed yet" in refused.traceback[0]
    plotted = [o for o in nb.cells[2].outputs if "image/png" in o.get("data", {})]
    assert len(plotted) == 1
    shown = base64.b64decode(plotted[0].data["image/png"])
    (sent,) = api.chat_requests[0].images
    assert sent["sha256"] == hashlib.sha256(shown).hexdigest() and sent["format"] == "PNG"
    final = nb.cells[3].outputs[-1].data["text/markdown"]
    assert f"[image PNG {sent['width']}x{sent['height']}" in final and "1 image" in final
    (second,) = api.chat_requests[1].images
    assert (second["width"], second["height"]) == (3, 2)
    assert len(api.chat_requests) == 2


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (0, 128, 255)).save(buf, format="PNG")
    return buf.getvalue()
