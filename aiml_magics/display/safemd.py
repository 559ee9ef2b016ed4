"""Untrusted text -> Markdown that carries no active content, whichever Markdown parser renders it.

Answers, reasoning, prompts pasted from web pages and names sent by the service are text anyone can
steer. JupyterLab renders raw HTML inside trusted Markdown outputs, so the Markdown we publish must
not contain any. Rather than hoping our reading of the Markdown matches the renderer's (marked,
markdown-it, mistune and python-markdown disagree on edge cases), every region of the output is
safe under *any* reading:

- text outside code: every ``<`` becomes ``&lt;`` (no tag, comment or autolink can start); every
  ``](`` and ``]:`` is followed by an http(s), mailto or relative URL, or gets a backslash that
  turns the link into text; an image ``![…](…)`` loads only from a relative path (or, when
  allowed, http(s)), a remote one becomes a plain link showing its URL, any other stays text;
- code spans become ``<code>`` elements of our own with every Markdown-active character written
  as an entity, so their text shows verbatim and nothing inside them is markup;
- a fenced code block stays a Markdown fence (highlighted by the frontend) when its text would be
  harmless even read as plain Markdown; otherwise it becomes ``<pre><code>`` with its text
  HTML-escaped (verbatim, without highlighting).

The function is stateless and linear in the text, so the live view can run it on each block it
publishes, including a half-typed block cut anywhere (a partial ``<img src=x onerror=`` is text).
No IPython here.
"""

from __future__ import annotations

import html
import re

LINK_SCHEMES = ("http", "https", "mailto")

_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_BLANK = re.compile(r"\n[ \t]*(?=\n)")
_TICK_OR_SLASH = re.compile(r"[`\\]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_UNSEEN = re.compile(r"[\x00-\x20\x7f]")  # browsers drop these inside and around URLs
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_TOKEN = re.compile(r"[ \t\n]*(\S*)")
_IMAGE = re.compile(r"!\[((?:\\.|[^\\\[\]])*)\]\(")
_LINK_TAIL = re.compile(r"\]([(:])")
_INFO_WORD = re.compile(r"[\w+#.\-]{0,40}")
# In a fence kept as Markdown: anything that would be markup if a renderer read the lines as text.
_TAG = re.compile(r"<(?:[!?]|/?([A-Za-z][A-Za-z0-9\-]*))")
_DANGEROUS_TAGS = frozenset(
    "script style iframe frame frameset object embed applet svg math base link meta form template "
    "noscript xmp plaintext textarea title img image video audio source track input button select "
    "details dialog marquee portal param picture canvas".split()
)
# Markdown-active characters, written as entities inside our own <code> and labels.
_LITERAL = str.maketrans({c: f"&#{ord(c)};" for c in "&<>`*_~[]\\$|!"})
_PRE = str.maketrans({c: f"&#{ord(c)};" for c in "&<>`*_~[]\\$|!"})
_HOLE = "\x00"  # a placeholder mark; NUL never survives from the input


def literal(text: str) -> str:
    """Text shown exactly as it is inside Markdown or HTML: nothing in it is markup."""
    return text.translate(_LITERAL).replace("\n", " ")


def safe_markdown(text: str, *, allow_remote_images: bool = False) -> str:
    """``text`` as Markdown with no active content (see the module docstring)."""
    if not text:
        return text
    text = text.replace("\x00", "\ufffd")
    if "```" not in text and "~~~" not in text:  # no fence can open: all prose, no line list
        return _prose(text, allow_remote_images)
    lines = text.split("\n")
    out: list[str] = []
    prose: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        m = _FENCE_OPEN.match(lines[i])
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            prose.append(lines[i])
            i += 1
            continue
        indent, marker, info = m.groups()
        j = i + 1
        while j < n and not _closes(lines[j], marker):
            j += 1
        if prose:
            out.append(_prose("\n".join(prose), allow_remote_images))
            prose = []
        out.append(_fence(indent, marker, info, lines[i + 1 : j]))
        i = j + 1
    if prose:
        out.append(_prose("\n".join(prose), allow_remote_images))
    return "\n".join(out)


def _closes(line: str, marker: str) -> bool:
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3 or not stripped.startswith(marker):
        return False
    rest = stripped.lstrip(marker[0])
    return not rest.strip(" \t")


# -- fenced code ------------------------------------------------------------------------------------


def _fence(indent: str, marker: str, info: str, body: list[str]) -> str:
    code = "\n".join(body)
    word = info.strip().split(" ")[0] if info.strip() else ""
    if not _INFO_WORD.fullmatch(word):
        word = ""
    if _harmless_as_text(code):
        # Longer than any run of the marker inside, so no parser ends the block early.
        runs = [len(x) - len(x.lstrip(marker[0])) for x in (line.lstrip(" ") for line in body)]
        marker = marker[0] * max(len(marker), max(runs, default=0) + 1)
        return "\n".join([f"{indent}{marker}{word}", *body, f"{indent}{marker}"])
    # Verbatim in a browser (an HTML block decodes the entities), plain text to a Markdown parser.
    lang = f' class="language-{word}"' if word else ""
    strip = len(indent)
    shown = [line[min(strip, len(line) - len(line.lstrip(" "))) :].translate(_PRE) for line in body]
    rows = [f"{indent}<pre><code{lang}>{shown[0] if shown else ''}"]
    rows += [f"{indent}{line}" if line else "" for line in shown[1:]]
    return "\n".join([*rows, f"{indent}</code></pre>"])


def _harmless_as_text(code: str) -> bool:
    """True when these lines would carry no markup even if a renderer read them as prose."""
    for m in _TAG.finditer(code):
        name = m.group(1)
        if name is None or name.lower() in _DANGEROUS_TAGS:
            return False
        after = code[m.end() : m.end() + 1]
        if after != ">":  # attributes (or a tag continued on the next line)
            return False
    if "![" in code:
        return False
    return all(_url_kind(code, m.end()) != "unsafe" for m in _LINK_TAIL.finditer(code))


# -- prose ----------------------------------------------------------------------------------------


def _prose(text: str, allow_remote_images: bool) -> str:
    parts = []
    last = 0
    for m in _BLANK.finditer(text):  # code spans never cross a blank line
        parts.append(_paragraph(text[last : m.start()], allow_remote_images))
        parts.append(text[m.start() : m.end()])
        last = m.end()
    parts.append(_paragraph(text[last:], allow_remote_images))
    return "".join(parts)


def _paragraph(text: str, allow_remote_images: bool) -> str:
    holes: list[str] = []
    text = _code_spans(text, holes).replace("<", "&lt;")
    if "![" in text:
        text = _images(text, holes, allow_remote_images)
    if "]" in text:
        text = _LINK_TAIL.sub(lambda m: _link(text, m), text)
    if holes:
        text = re.sub(f"{_HOLE}(\\d+){_HOLE}", lambda m: holes[int(m.group(1))], text)
    return text


def _hole(holes: list[str], html_text: str) -> str:
    holes.append(html_text)
    return f"{_HOLE}{len(holes) - 1}{_HOLE}"


def _code(content: str) -> str:
    return f"<code>{literal(content)}</code>"


def _code_spans(text: str, holes: list[str]) -> str:
    """CommonMark code spans (a run of N backticks to the next run of exactly N) -> holes."""
    if "`" not in text:
        return text
    out: list[str] = []
    start = i = 0
    n = len(text)
    while True:
        m = _TICK_OR_SLASH.search(text, i)
        if m is None:
            break
        i = m.start()
        if text[i] == "\\":
            i += 2
            continue
        j = i
        while j < n and text[j] == "`":
            j += 1
        run = j - i
        close = _closing_run(text, j, run)
        if close < 0:
            i = j
            continue
        content = text[j:close].replace("\n", " ")
        if len(content) > 2 and content[0] == content[-1] == " " and content.strip():
            content = content[1:-1]
        out.append(text[start:i])
        out.append(_hole(holes, _code(content)))
        i = start = close + run
    out.append(text[start:])
    return "".join(out)


def _closing_run(text: str, at: int, run: int) -> int:
    ticks = "`" * run
    n = len(text)
    while True:
        k = text.find(ticks, at)
        if k < 0:
            return -1
        e = k
        while e < n and text[e] == "`":
            e += 1
        if e - k == run:
            return k
        at = e


# -- links and images -------------------------------------------------------------------------------


def _url_kind(text: str, at: int) -> str:
    """What the URL starting at ``text[at]`` (after optional whitespace) would be to a browser:
    "relative", "remote" (http/https or protocol-relative), "mail" or "unsafe"."""
    token = _TOKEN.match(text, at).group(1)  # type: ignore[union-attr]
    if not token or _HOLE in token:
        return "unsafe"  # nothing here (the URL would come from elsewhere), or a code span
    url = _UNSEEN.sub("", _BACKSLASH_ESCAPE.sub(r"\1", html.unescape(token))).lstrip("<")
    scheme = _SCHEME.match(url)
    if scheme:
        name = scheme.group(1).lower()
        return "remote" if name in ("http", "https") else "mail" if name == "mailto" else "unsafe"
    if url.startswith(("//", "\\", "/\\")):
        return "remote"
    return "relative"


def _destination(text: str, at: int) -> str:
    """The link destination starting at ``text[at]``, as CommonMark reads a bare one (for display)."""
    token = _TOKEN.match(text, at).group(1)  # type: ignore[union-attr]
    depth = 0
    for i, c in enumerate(token):
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                return token[:i]
            depth -= 1
    return token


def _link(text: str, m: re.Match[str]) -> str:
    """``](`` or ``]:`` followed by a URL that may not be a link: a backslash makes it text."""
    if _url_kind(text, m.end()) in ("relative", "remote", "mail"):
        return m.group(0)
    return "]\\" + m.group(1)


def _escaped(text: str, at: int) -> bool:
    """True when ``text[at]`` follows an odd number of backslashes."""
    k = at
    while k > 0 and text[k - 1] == "\\":
        k -= 1
    return (at - k) % 2 == 1


def _plain_destination(text: str, at: int) -> bool:
    """A relative image loads only from a plain path closed by ``)``: no spaces, no brackets.
    Renderers disagree on where a spaced or unclosed destination ends (python-markdown reads
    ``![](<a href='javascript:x'>(`` as an image from ``<a href='javascript:x'``)."""
    close = text.find(")", at)
    return close >= 0 and not re.search(r"\s|&lt;|&gt;|[<>]", text[at:close])


def _images(text: str, holes: list[str], allow_remote_images: bool) -> str:
    out: list[str] = []
    last = 0
    at = text.find("![")
    while at >= 0:
        if not _escaped(text, at):
            out.append(text[last:at])
            m = _IMAGE.match(text, at)
            kind = _url_kind(text, m.end()) if m else "unsafe"
            if kind == "relative" and not _plain_destination(text, m.end()):  # type: ignore[union-attr]
                kind = "unsafe"
            if m and kind == "relative" and text[m.end() :].lstrip(" \t\n").startswith("&lt;"):
                kind = "unsafe"  # a <...> destination: some parsers read on past spaces to the >
            if m and (kind == "relative" or (kind == "remote" and allow_remote_images)):
                out.append(m.group(0))
                last = m.end()
            elif m and kind == "remote":
                url = _BACKSLASH_ESCAPE.sub(r"\1", html.unescape(_destination(text, m.end())))
                label = f"🖼 {m.group(1)} " if m.group(1).strip() else "🖼 "
                out.append(f"[{label}{_hole(holes, _code(url))}](")
                last = m.end()
            else:
                out.append("!\\[")
                last = at + 2
        at = text.find("![", at + 2)
    out.append(text[last:])
    return "".join(out)
