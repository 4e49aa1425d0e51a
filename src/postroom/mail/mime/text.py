"""HTML to readable plain text, for HTML-only mail and for search.

The stdlib's ``html.parser`` is enough: we need paragraphs, line breaks,
list bullets, table rows and link targets, not layout. It is tolerant of
the broken markup mail is full of and never raises on it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "dd", "details", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
        "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "math"})
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "wbr"})
_SPACES = re.compile(r"[ \t\r\n\f\u00a0\u200b]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0
        self.href: str | None = None
        self.link_text: list[str] = []

    def _newline(self, count: int = 1) -> None:
        # Count only the newlines already at the end, so nested blocks do
        # not pile up blank lines.
        tail = "".join(self.out[-3:])
        have = len(tail) - len(tail.rstrip("\n"))
        if self.out and have < count:
            self.out.append("\n" * (count - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            if tag not in _VOID:
                self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag == "br":
            self.out.append("\n")
        elif tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol"):
            self._newline(2)
        elif tag in _BLOCK:
            self._newline()
        if tag == "li":
            self.out.append("- ")
        elif tag in ("td", "th"):
            if self.out and not self.out[-1].endswith(("\n", "\t")):
                self.out.append("\t")
        elif tag == "pre":
            self.pre_depth += 1
        elif tag == "a":
            self.href = dict(attrs).get("href")
            self.link_text = []
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self.out.append(f"[{alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        if tag == "a" and self.href is not None:
            href, text = self.href.strip(), "".join(self.link_text).strip()
            # Show where a link goes unless its text already says so;
            # "click here" without the URL is useless in plain text.
            if href.startswith(("http://", "https://")) and text and href not in text:
                self.out.append(f" <{href}>")
            self.href = None
        if tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol"):
            self._newline(2)
        elif tag in _BLOCK:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if not self.pre_depth:
            data = _SPACES.sub(" ", data)
            if data == " " and (not self.out or self.out[-1].endswith((" ", "\n", "\t"))):
                return
            if self.out and self.out[-1].endswith(("\n", "\t")):
                data = data.lstrip(" ")
        self.out.append(data)
        if self.href is not None:
            self.link_text.append(data)


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML document or fragment. Never raises."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser can trip on pathological input
        # Fall back to stripping tags: a search index is better fed crudely
        # than not at all.
        return _SPACES.sub(" ", re.sub(r"<[^>]*>", " ", html)).strip()
    text = "".join(parser.out)
    lines = [line.rstrip(" \t") for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
