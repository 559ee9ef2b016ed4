"""Images in prompts (issue 15): figures, arrays, files, URLs and the last image shown, to a vision
model, against the loopback fake, which decodes every image part it receives (format, pixels,
bytes, sha256). In a real IPython shell for the cell magic; from Python for ``chat(images=)``.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import sys

import pytest

from aiml_magics import ParameterError, Session
from tests.conftest import KEY_VARS, TEST_KEY, run_cell
from tests.fakeapi import FakeAIMLAPI, Reply, pillow

np = pytest.importorskip("numpy")
Image = pytest.importorskip("PIL.Image")
matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

VISION = "gpt-4o"


@pytest.fixture
def session(api: FakeAIMLAPI, monkeypatch: pytest.MonkeyPatch) -> Session:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    s = Session(api_key=TEST_KEY, base_url=api.base_url, max_retries=0, model=VISION)
    yield s
    s.close()


@pytest.fixture
def figure():
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.plot([1, 2, 3], [3, 1, 2])
    yield fig
    plt.close(fig)


def png_bytes(w: int, h: int, colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="PNG")
    return buf.getvalue()


def user_content(api: FakeAIMLAPI) -> list:
    return api.chat_requests[-1].json["messages"][-1]["content"]


# -- what is sent ----------------------------------------------------------------------------------


def test_a_figure_in_a_cell_goes_as_text_then_a_png_part(shell, api, figure):
    shell.user_ns["fig"] = figure
    api.queue(Reply(echo=True))
    run = run_cell(shell, f"%%aiml -m {VISION} --image fig\nWhat does this plot show?")
    assert run.error is None, run.shown
    content = user_content(api)
    assert content[0] == {"type": "text", "text": "What does this plot show?"}
    assert [p["type"] for p in content] == ["text", "image_url"]
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    (image,) = api.chat_requests[-1].images
    assert (image["format"], image["width"], image["height"]) == ("PNG", 400, 300)
    # The echo describes the image it received; the footer says what was sent.
    waiting = run.outputs[0].data["text/markdown"]  # the live view, before the answer
    assert "Waiting for" in waiting and "sent 1 image, " in waiting
    final = run.final_markdown()
    assert "[image PNG 400x300" in final
    kb = f"{round(image['bytes'] / 1000)} KB"
    assert f"1 image, {kb}" in final
    # aiml_response.request shows a description, never the base64.
    shown = repr(shell.user_ns["aiml_response"].request)
    assert f"[image 400×300 PNG, {kb}]" in shown and "base64" not in shown


def test_chat_images_an_array_is_scaled_to_the_long_edge_keeping_the_aspect(session, api):
    pixels = np.zeros((3000, 1200, 3), np.uint8)
    pixels[:, :600, 0] = 255  # left half red: the scaled image must still be split down the middle
    api.queue(Reply(echo=True), Reply(echo=True))
    session.chat("describe", images=[pixels])
    (image,) = api.chat_requests[-1].images
    assert max(image["width"], image["height"]) == 2048 == image["height"]
    assert abs(image["width"] / image["height"] - 1200 / 3000) < 1 / 2048 + 1e-9
    # A smaller limit is a setting; floats in 0..1 are pixels too.
    session.settings.max_image_edge = 300
    session.chat("again", images=np.linspace(0, 1, 600 * 450).reshape(450, 600))
    (image,) = api.chat_requests[-1].images
    assert (image["width"], image["height"]) == (300, 225)


def test_a_file_a_path_and_bytes_go_unchanged(session, api, tmp_path):
    data = png_bytes(120, 80)
    target = tmp_path / "plot.png"
    target.write_bytes(data)
    api.queue(Reply(echo=True))
    session.chat("three", images=[str(target), target, data])
    images = api.chat_requests[-1].images
    assert [i["sha256"] for i in images] == [hashlib.sha256(data).hexdigest()] * 3
    assert all((i["width"], i["height"]) == (120, 80) for i in images)


def test_a_url_is_passed_on_and_never_fetched(shell, api, monkeypatch):
    looked_up: list = []
    real = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            looked_up.append(host)
            raise socket.gaierror("no network in tests")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    url = "https://images.example.org/chart.png"
    api.queue(Reply(echo=True))
    run = run_cell(shell, f"%%aiml -m {VISION} --image {url}\nAnd this one?")
    assert run.error is None, run.shown
    assert api.chat_requests[-1].images == [{"kind": "url", "url": url}]
    assert looked_up == []


def test_several_images_in_order_after_the_text(shell, api, figure, tmp_path):
    target = tmp_path / "small.png"
    target.write_bytes(png_bytes(50, 40))
    shell.user_ns.update(fig=figure, arr=np.full((30, 20), 128, np.uint8))
    api.queue(Reply(echo=True))
    run = run_cell(shell, f"%%aiml -m {VISION} --image fig --image arr --image {target} "
                          "--image https://example.org/x.jpg\nCompare them.")
    assert run.error is None, run.shown
    content = user_content(api)
    assert [p["type"] for p in content] == ["text"] + ["image_url"] * 4
    sizes = [(i.get("width"), i.get("height")) for i in api.chat_requests[-1].images]
    assert sizes == [(400, 300), (20, 30), (50, 40), (None, None)]
    assert "4 images" in run.final_markdown()


# -- refused before anything is sent ---------------------------------------------------------------


@pytest.mark.parametrize(
    "setup, expr, words",
    [
        ("n = 3", "n", "--image n = 3 is not an image"),
        ("", "missing.png", "no variable 'missing' and no file 'missing.png'"),
        ("", "{tmp}/notes.txt", "is not an image (PNG, JPEG, GIF or WEBP)"),
        ("", "nothing_here", "no variable 'nothing_here'"),
        ("import numpy as np; a = np.zeros((4, 4, 2), np.uint8)", "a", "shape (4, 4, 2) is not an image"),
        ("import numpy as np; a = np.zeros((4, 4), np.int64)", "a", "an array of int64 is not an image"),
        ("import numpy as np; a = np.full((4, 4), 7.5)", "a", "must hold values in 0..1"),
        ("b = b'not an image'", "b", "bytes are not a PNG, JPEG, GIF or WEBP image"),
    ],
)
def test_bad_input_is_refused_naming_it_before_sending(shell, api, tmp_path, setup, expr, words):
    (tmp_path / "notes.txt").write_text("hello")
    if setup:
        shell.run_cell(setup)
    expr = expr.format(tmp=tmp_path)
    run = run_cell(shell, f"%%aiml -m {VISION} --image {expr}\nWhat is it?")
    assert isinstance(run.error, ParameterError), run.shown
    assert words in str(run.error)
    assert api.chat_requests == []
    # The next cell works.
    api.queue(Reply(content="fine"))
    assert run_cell(shell, "%%aiml\nhello").error is None


def test_chat_refuses_bad_images_naming_them(session, api):
    with pytest.raises(ParameterError, match=r"images\[1\] = 42 is not an image"):
        session.chat("x", images=[png_bytes(4, 4), 42])
    with pytest.raises(ParameterError, match="no image file"):
        session.chat("x", images=["/no/such/file.png"])
    assert api.chat_requests == [] and len(session.history) == 0


def test_image_alone_with_nothing_shown_yet_says_so(shell, api, magics):
    magics.last_image.data = None
    run = run_cell(shell, f"%%aiml -m {VISION} --image\nWhat does the plot above show?")
    assert isinstance(run.error, ParameterError)
    assert "none has been displayed yet" in str(run.error)
    assert api.chat_requests == []


# -- the vision check ------------------------------------------------------------------------------


def test_a_model_without_vision_is_refused_and_models_vision_lists_the_others(shell, api, figure):
    shell.user_ns["fig"] = figure
    run = run_cell(shell, "%%aiml -m baidu/ernie-5.0 --image fig\nWhat is this?")
    assert run.error is not None and "cannot read images" in str(run.error)
    assert "%aiml models --vision" in str(run.error)
    assert api.chat_requests == []
    listing = run_cell(shell, "%aiml models --vision")
    assert "gpt-4o" in listing.shown and "baidu/ernie-5.0" not in listing.shown
    # An alias resolves to its listed model, which can see.
    api.queue(Reply(echo=True))
    assert run_cell(shell, "%%aiml -m openai/gpt-4o --image fig\nWhat is this?").error is None


def test_without_a_models_list_images_are_sent_anyway(session, api):
    api.models_fail = 500
    api.queue(Reply(echo=True))
    session.chat("x", images=[png_bytes(8, 8)], model="baidu/ernie-5.0")
    assert len(api.chat_requests[-1].images) == 1


# -- descriptions everywhere, images kept in the conversation --------------------------------------


def test_history_exports_dry_run_and_snippet_show_descriptions(shell, api, figure, tmp_path):
    shell.user_ns["fig"] = figure
    api.queue(Reply(content="A line going down then up."))
    assert run_cell(shell, f"%%aiml -m {VISION} --image fig\nWhat is it?").error is None
    (image,) = api.chat_requests[-1].images
    want = f"[image 400×300 PNG, {round(image['bytes'] / 1000)} KB]"
    history = shell.user_ns["aiml_history"]
    texts = {
        "markdown": history.to_markdown(),
        "text": history.to_text(),
        "json": history.to_json(),
        "conversation": history.conversation_json(),
        "records": json.dumps(history.records(), ensure_ascii=False),
    }
    history.save(tmp_path / "h.json")
    history.save(tmp_path / "h.md")
    texts["saved json"] = (tmp_path / "h.json").read_text()
    texts["saved md"] = (tmp_path / "h.md").read_text()
    texts["%aiml history --json"] = run_cell(shell, "%aiml history --json").shown
    texts["dry run"] = run_cell(shell, f"%%aiml -m {VISION} --image fig --dry-run\nAgain?").shown
    texts["snippet"] = run_cell(shell, "%aiml snippet --full").shown
    for where, text in texts.items():
        assert "base64" not in text and "iVBOR" not in text, where
        assert want in text.replace("\\u00d7", "×").replace("&#91;", "[").replace("&#93;", "]"), where


def test_later_cells_resend_the_images_unless_dropped(session, api):
    data = png_bytes(64, 48)
    api.queue(Reply(content="a red square"), Reply(content="yes"), Reply(content="ok"))
    session.chat("what is it?", images=[data])
    session.chat("are you sure?")
    first = api.chat_requests[-1].json["messages"][0]
    assert first["role"] == "user" and first["content"][0]["text"] == "what is it?"
    sent = first["content"][1]["image_url"]["url"].split(",", 1)[1]
    import base64

    assert hashlib.sha256(base64.b64decode(sent)).digest() == hashlib.sha256(data).digest()
    session.settings.keep_images_in_history = False
    session.chat("and now?")
    assert api.chat_requests[-1].json["messages"][0] == {"role": "user", "content": "what is it?"}


def test_cassettes_match_images_by_hash_and_store_no_base64(shell, api, tmp_path):
    cassette = tmp_path / "vision.json"
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png_bytes(32, 32))
    b.write_bytes(png_bytes(32, 32, (0, 0, 255)))
    run_cell(shell, f"%aiml record {cassette}")
    api.queue(Reply(content="A red square."))
    assert run_cell(shell, f"%%aiml -m {VISION} --image {a}\nWhat is it?").error is None
    saved = cassette.read_text()
    assert "base64" not in saved
    assert "sha256:" + hashlib.sha256(a.read_bytes()).hexdigest() in saved
    run_cell(shell, f"%aiml replay {cassette}")
    again = run_cell(shell, f"%%aiml --new -m {VISION} --image {a}\nWhat is it?")
    assert "A red square." in again.final_markdown()
    other = run_cell(shell, f"%%aiml --new -m {VISION} --image {b}\nWhat is it?")
    assert "Offline echo" in other.final_markdown() and "image 32×32 PNG" in other.final_markdown()
    assert len(api.chat_requests) == 1  # replay sent nothing, not even GET /models
    assert sum(r.path.endswith("/models") for r in api.requests) == 1


# -- without Pillow --------------------------------------------------------------------------------


def test_without_pillow_small_images_work_and_large_ones_say_why(session, api, monkeypatch):
    small, large = png_bytes(100, 60), png_bytes(3000, 100)
    pillow()  # the fake decodes with Pillow: hidden from the client only
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    api.queue(Reply(echo=True))
    session.chat("x", images=[small, np.zeros((10, 12, 3), np.uint8)])
    assert [(i["width"], i["height"]) for i in api.chat_requests[-1].images] == [(100, 60), (12, 10)]
    with pytest.raises(ParameterError, match=r"3000×100 PNG must be scaled to 2048 px.*Pillow"):
        session.chat("y", images=[large])
    assert len(api.chat_requests) == 1


def test_a_large_photo_goes_as_jpeg_when_png_is_over_the_limit(session, api):
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8)  # incompressible as PNG
    session.settings.max_image_bytes = 1_000_000
    api.queue(Reply(echo=True))
    session.chat("x", images=[noise])
    (image,) = api.chat_requests[-1].images
    assert image["format"] == "JPEG" and image["bytes"] <= 1_000_000
    assert (image["width"], image["height"]) == (1200, 900)


def test_every_accepted_kind_of_value(session, api, figure):
    from IPython.display import Image as IPyImage

    def encoded(fmt: str) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (21, 13), (10, 200, 10)).save(buf, format=fmt)
        return buf.getvalue()

    values = [
        figure.axes[0],  # an Axes: its figure
        Image.new("RGBA", (30, 20)),  # a PIL image
        np.zeros((7, 9, 4), np.uint8),  # RGBA pixels
        encoded("JPEG"), encoded("GIF"), encoded("WEBP"),
        IPyImage(data=encoded("PNG")),
        IPyImage(url="https://example.org/remote.png"),
    ]
    api.queue(Reply(echo=True))
    session.chat("all of them", images=values)
    got = [(i.get("format"), i.get("width"), i.get("height"), i.get("url"))
           for i in api.chat_requests[-1].images]
    assert got == [
        ("PNG", 400, 300, None), ("PNG", 30, 20, None), ("PNG", 9, 7, None),
        ("JPEG", 21, 13, None), ("GIF", 21, 13, None), ("WEBP", 21, 13, None),
        ("PNG", 21, 13, None), (None, None, None, "https://example.org/remote.png"),
    ]
    mimes = [p["image_url"]["url"][:15] for p in user_content(api)[1:7]]
    assert mimes[3:6] == ["data:image/jpeg", "data:image/gif;", "data:image/webp"]


@pytest.mark.parametrize("fmt, options", [
    ("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("GIF", {}),
    ("WEBP", {}), ("WEBP", {"lossless": True}), ("WEBP-alpha", {}),
])
def test_sizes_are_read_from_headers_without_pillow(fmt, options):
    """What lets images that need no scaling go without Pillow: format and size from the bytes."""
    from aiml_magics.imagefile import header_size, sniff

    mode = "RGBA" if fmt.endswith("alpha") else "RGB"
    buf = io.BytesIO()
    Image.new(mode, (1234, 567), (1, 2, 3)).save(buf, format=fmt.split("-")[0], **options)
    data = buf.getvalue()
    assert sniff(data) == fmt.split("-")[0]
    assert header_size(data, sniff(data)) == (1234, 567)


# -- drawn at the size sent, encoded once ------------------------------------------------------------


@pytest.fixture
def pillow_calls(monkeypatch):
    """Counts of Pillow's encoder and scaler, as every route to bytes goes through them
    (matplotlib writes its PNGs with Pillow too)."""
    calls = {"save": 0, "resize": 0}
    save, resize = Image.Image.save, Image.Image.resize

    def counted_save(self, *args, **kwargs):
        calls["save"] += 1
        return save(self, *args, **kwargs)

    def counted_resize(self, *args, **kwargs):
        calls["resize"] += 1
        return resize(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", counted_save)
    monkeypatch.setattr(Image.Image, "resize", counted_resize)
    return calls


def test_a_large_figure_is_drawn_at_the_size_it_is_sent_and_encoded_once(session, api, pillow_calls):
    fig, ax = plt.subplots(figsize=(40, 25), dpi=100)  # 4000×2500 px as it stands
    ax.plot([1, 2, 3], [3, 1, 2])
    try:
        api.queue(Reply(echo=True), Reply(echo=True))
        session.chat("describe", images=fig)
        (image,) = api.chat_requests[-1].images
        assert (image["format"], image["width"], image["height"]) == ("PNG", 2048, 1280)
        assert pillow_calls == {"save": 1, "resize": 0}  # one PNG, never scaled afterwards
        assert fig.dpi == 100 and tuple(fig.get_size_inches()) == (40, 25)  # the figure is as it was
        session.settings.max_image_edge = 500
        session.chat("smaller", images=ax)
        (image,) = api.chat_requests[-1].images
        assert (image["width"], image["height"]) == (500, 312)
    finally:
        plt.close(fig)


def test_a_figure_that_fits_is_drawn_at_its_own_size(session, api, figure, pillow_calls):
    api.queue(Reply(echo=True))
    session.chat("describe", images=figure)
    (image,) = api.chat_requests[-1].images
    assert (image["width"], image["height"]) == (400, 300) and pillow_calls == {"save": 1, "resize": 0}


def test_pil_images_and_bytes_are_scaled_only_over_the_limit_and_encoded_once(session, api, pillow_calls):
    small, big = Image.new("RGB", (300, 200), (1, 2, 3)), Image.new("RGB", (4000, 1000), (9, 9, 9))
    data, tiny = png_bytes(3000, 1500), png_bytes(64, 64)
    pillow_calls.update(save=0, resize=0)
    api.queue(Reply(echo=True), Reply(echo=True), Reply(echo=True))
    session.chat("small", images=small)
    assert pillow_calls == {"save": 1, "resize": 0}
    session.chat("big", images=big)
    assert pillow_calls == {"save": 2, "resize": 1}
    session.chat("bytes", images=[data, tiny])  # the large one scaled and encoded; tiny as it is
    assert pillow_calls == {"save": 3, "resize": 2}
    got = [(i["width"], i["height"]) for i in api.chat_requests[-1].images]
    assert got == [(2048, 1024), (64, 64)]
