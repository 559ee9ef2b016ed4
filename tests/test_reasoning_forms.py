"""Reasoning in every form providers send it, read by the pure folding code (``reasoning.py``).

Hypothesis cuts a think-tagged answer at every possible place: however the chunks fall, the
reasoning and the text come out whole and no piece of a tag ever shows as text.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiml_magics.reasoning import ThinkSplitter, content_parts, provider_usage, split_think


def run(pieces: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    text, thought = [], []
    for piece in pieces:
        out, th = splitter.feed(piece)
        text.append(out)
        thought.append(th)
    out, th = splitter.flush()
    return "".join(text) + out, "".join(thought) + th


def cut(whole: str, points: list[int]) -> list[str]:
    bounds = sorted({0, len(whole), *[p % (len(whole) + 1) for p in points]})
    return [whole[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_a_leading_think_block_is_reasoning_wherever_the_chunks_are_cut(points):
    whole = "<think>\nWeigh the teas: green, then black.\n</think>\n\nGreen tea, at 80 °C."
    text, thought = run(cut(whole, points))
    assert text == "Green tea, at 80 °C."
    assert thought == "Weigh the teas: green, then black."


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_text_without_a_leading_tag_passes_unchanged(points):
    whole = "Use <think> tags? No: this answer quotes </think> and <thinking> as text."
    assert run(cut(whole, points)) == (whole, "")


def test_a_close_tag_that_never_comes_leaves_the_rest_as_reasoning():
    assert run(["<think>", "still weighing", " the </thi"]) == ("", "still weighing the </thi")


def test_a_late_close_tag_and_leading_blank_lines():
    text, thought = run(["\n\n", "<thi", "nk>", "a", "b" * 500, "</think>", "answer"])
    assert (text, thought) == ("answer", "a" + "b" * 500)


def test_a_whole_answer_is_split_once():
    assert split_think("<think>hm</think>\nYes.") == ("Yes.", "hm")
    assert split_think("No tags here.") == ("No tags here.", None)
    assert split_think("Later <think>x</think> is text.") == ("Later <think>x</think> is text.", None)


def test_mistral_thinking_parts_and_groq_usage():
    parts = [{"type": "thinking", "thinking": [{"type": "text", "text": "Hot water"}]},
             {"type": "text", "text": "Boil it."}, {"type": "image_url"}, "junk"]
    assert content_parts(parts) == ("Boil it.", "Hot water")
    assert content_parts(None) == ("", "")
    assert provider_usage({"x_groq": {"usage": {"total_tokens": 3}}}) == {"total_tokens": 3}
    assert provider_usage({"x_groq": {"id": "req"}}) is None


def test_a_flood_of_line_ends_inside_a_block_is_read_in_linear_time():
    splitter = ThinkSplitter()
    splitter.feed("<think>x")
    released = sum(len(splitter.feed("\n")[1]) for _ in range(200_000))
    assert released > 199_000 and len(splitter.peek()[1]) == 0  # at most a few are ever held
