"""HTML mail made safe to show, with nh3 (ammonia).

The policy is an allow-list: formatting, tables, links and images survive;
scripts, event handlers, forms, frames, embedded objects, ``<style>``
blocks, ``class``/``id`` (they would reach the application's own CSS and
DOM) and CSS that positions content over the page do not.

Remote images are tracking beacons as often as they are content, so they
are blocked until the user allows them: the ``src`` is moved to
``data-remote-src`` (so the UI can say what was blocked and a "show images"
switch can re-render with ``allow_remote_images=True``), and CSS
``url(...)`` references to the network are removed. ``cid:`` images are
mapped to URLs the application serves; ``data:`` URLs survive only as
``image/*`` in ``<img>``.

The output is still meant to be shown in a sandboxed iframe with a
restrictive CSP; sanitising is one layer, not the only one.
"""

from __future__ import annotations

import html as html_lib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import unquote

import nh3

from postroom.mail.mime.text import html_to_text

_TAGS = frozenset(
    {
        "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big",
        "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del",
        "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd",
        "li", "main", "mark", "nav", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp",
        "section", "small", "span", "strike", "strong", "sub", "summary", "sup", "table",
        "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
    }
)  # fmt: skip

# Removed with their content: code, and text that only makes sense inside
# a widget we do not render (a <title> would otherwise show up as the
# first line of the mail).
_CLEAN_CONTENT = frozenset(
    {
        "script", "style", "title", "template", "noscript", "object", "embed", "applet",
        "iframe", "frame", "frameset", "textarea", "select", "option", "svg", "math",
        "canvas", "head",
    }
)  # fmt: skip

_GENERIC_ATTRS = frozenset({"align", "valign", "dir", "lang", "title", "style", "width", "height"})
_ATTRIBUTES: dict[str, frozenset[str]] = {
    "*": _GENERIC_ATTRS,
    "a": frozenset({"href"}),
    "img": frozenset({"src", "alt", "border", "hspace", "vspace"}),
    "font": frozenset({"color", "face", "size"}),
    "table": frozenset(
        {"border", "cellpadding", "cellspacing", "bgcolor", "summary", "frame", "rules"}
    ),
    "td": frozenset({"colspan", "rowspan", "bgcolor", "nowrap", "scope", "abbr"}),
    "th": frozenset({"colspan", "rowspan", "bgcolor", "nowrap", "scope", "abbr"}),
    "tr": frozenset({"bgcolor"}),
    "tbody": frozenset({"bgcolor"}),
    "col": frozenset({"span"}),
    "colgroup": frozenset({"span"}),
    "ol": frozenset({"start", "type", "reversed"}),
    "ul": frozenset({"type"}),
    "li": frozenset({"value", "type"}),
    "div": frozenset({"bgcolor"}),
    "hr": frozenset({"size", "noshade", "color"}),
    "time": frozenset({"datetime"}),
    "bdo": frozenset({"dir"}),
    "details": frozenset({"open"}),
}

# Layout and typography, but nothing that lifts content out of the flow
# (position, z-index, transform) or fetches from the network by itself
# (cursor, list-style-image, border-image, mask, filter, content).
_STYLE_PROPERTIES = frozenset(
    {
        "color", "background", "background-color", "background-image", "background-repeat",
        "background-position", "background-size", "font", "font-family", "font-size",
        "font-style", "font-weight", "font-variant", "line-height", "letter-spacing",
        "word-spacing", "text-align", "text-decoration", "text-indent", "text-transform",
        "white-space", "vertical-align", "direction", "margin", "margin-top", "margin-right",
        "margin-bottom", "margin-left", "padding", "padding-top", "padding-right",
        "padding-bottom", "padding-left", "border", "border-top", "border-right",
        "border-bottom", "border-left", "border-color", "border-style", "border-width",
        "border-collapse", "border-spacing", "border-radius", "border-top-color",
        "border-bottom-color", "border-left-color", "border-right-color", "border-top-style",
        "border-bottom-style", "border-left-style", "border-right-style", "border-top-width",
        "border-bottom-width", "border-left-width", "border-right-width", "width", "height",
        "max-width", "min-width", "max-height", "min-height", "display", "float", "clear",
        "overflow", "table-layout", "list-style-type", "list-style-position", "caption-side",
        "empty-cells", "word-wrap", "overflow-wrap", "word-break", "text-overflow", "opacity",
        "visibility",
    }
)  # fmt: skip

_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid", "data"})
_REMOTE = re.compile(r"\s*(?:https?:)?//", re.I)
_DATA_IMAGE = re.compile(r"\s*data:image/[a-z0-9.+-]+[;,]", re.I)
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)""", re.I | re.S)
_LINK_REL = "noopener noreferrer nofollow"
_MAX_STYLE = 10_000

# html5ever (inside nh3) checks the whole stack of open elements for every
# block-level start tag, so tens of thousands of unclosed <div>s cost
# seconds (100,000 took a minute here). Such HTML is hostile or broken
# beyond rendering; above this nesting depth it is shown as text instead.
_MAX_DEPTH = 500
_CHECK_DEPTH_ABOVE_TAGS = 3000  # fewer tags than this cannot be slow enough to matter
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)")
# Void elements, and elements whose end tag is optional (the parser closes
# them by their next sibling), do not deepen the tree.
_FLAT = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
     "source", "track", "wbr", "p", "li", "td", "th", "tr", "dd", "dt", "option", "tbody",
     "thead", "tfoot", "colgroup", "caption"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SanitizedHtml:
    """Safe HTML and how many remote images it referenced that were blocked."""

    html: str
    blocked_remote_images: int


def _split_declarations(style: str) -> list[str]:
    # Split on semicolons outside parentheses and quotes: url("a;b") is one
    # value, not two declarations.
    out, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(style):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0:
            out.append(style[start:i])
            start = i + 1
    out.append(style[start:])
    return [d for d in (d.strip() for d in out) if d]


class _Policy:
    """One sanitising run: its options, and what it blocked."""

    def __init__(self, allow_remote_images: bool, cid_map: dict[str, str] | None) -> None:
        self.allow_remote = allow_remote_images
        self.cid_map = cid_map or {}
        self.cid_lookup = {_cid_key(k): v for k, v in self.cid_map.items()}
        self.served_urls = frozenset(self.cid_map.values())
        self.blocked: list[str] = []
        # A fresh token per run: the sender cannot predict the placeholder,
        # so nothing in the mail can be turned into one.
        self.token = secrets.token_hex(8)

    def placeholder(self, url: str) -> str:
        self.blocked.append(url)
        return f"https://blocked-{self.token}.invalid/{len(self.blocked) - 1}"

    def attribute(self, tag: str, attr: str, value: str) -> str | None:
        if attr == "style":
            return self.style(value)
        if attr == "href":
            stripped = value.strip()
            if stripped.lower().startswith(("data:", "cid:")):
                return None
            # Protocol-relative links would count as relative and be dropped.
            return "https:" + stripped if stripped.startswith("//") else value
        if attr != "src":
            return value
        lowered = value.lstrip().lower()
        if lowered.startswith("cid:"):
            return self.cid_lookup.get(_cid_key(value.strip()[4:]))
        if lowered.startswith("data:"):
            return value if _DATA_IMAGE.match(value) and tag == "img" else None
        if _REMOTE.match(value):
            if not self.allow_remote:
                return self.placeholder(value.strip())
            value = value.strip()
            # Protocol-relative URLs would count as relative and be dropped.
            return "https:" + value if value.startswith("//") else value
        return value  # relative: url_relative decides

    def style(self, value: str) -> str | None:
        if len(value) > _MAX_STYLE:
            return None  # no real layout needs it; the url() scan would be slow
        if "url(" not in value.lower():
            return value
        kept = []
        for decl in _split_declarations(value):
            urls = [m.group(2).strip() for m in _CSS_URL.finditer(decl)]
            if "url(" in decl.lower() and not urls:
                continue  # malformed url(): nothing we can vouch for
            remote = [u for u in urls if _REMOTE.match(u)]
            allowed = all(
                (_REMOTE.match(u) and self.allow_remote) or _DATA_IMAGE.match(u) for u in urls
            )
            if allowed:
                kept.append(decl)
            elif remote and not self.allow_remote:
                self.blocked.extend(remote)
        return "; ".join(kept) or None

    def relative(self, url: str) -> str | None:
        # Relative URLs would resolve against Postroom itself. Only the ones
        # we put there ourselves (cid: images mapped to our attachment URLs)
        # may stay.
        return url if url in self.served_urls else None


def _too_deep(html: str) -> bool:
    if html.count("<") < _CHECK_DEPTH_ABOVE_TAGS:
        return False
    depth = 0
    for m in _TAG.finditer(html):
        if m.group(2).lower() in _FLAT:
            continue
        if m.group(1):
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > _MAX_DEPTH:
                return True
    return False


def _cid_key(cid: str) -> str:
    return unquote(cid.strip()).strip().strip("<>").strip().lower()


def sanitize_html(
    html: str,
    *,
    allow_remote_images: bool = False,
    cid_map: dict[str, str] | None = None,
) -> SanitizedHtml:
    """Clean untrusted mail HTML for display.

    ``cid_map`` maps Content-IDs (with or without angle brackets; matched
    case-insensitively, as clients percent-encode and re-case them) to the
    URL the application serves that inline image from. Unmapped ``cid:``
    images lose their ``src``. Never raises on malformed HTML.
    """
    if _too_deep(html):
        text = html_lib.escape(html_to_text(html))
        return SanitizedHtml(html=f"<pre>{text}</pre>", blocked_remote_images=0)
    policy = _Policy(allow_remote_images, cid_map)
    cleaner = nh3.Cleaner(
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=policy.attribute,
        strip_comments=True,
        link_rel=_LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_schemes=_URL_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
        url_relative=policy.relative,
    )
    cleaned = cleaner.clean(html)
    if policy.blocked and not allow_remote_images:
        prefix = f'src="https://blocked-{policy.token}.invalid/'

        def restore(m: re.Match[str]) -> str:
            url = policy.blocked[int(m.group(1))]
            return f'data-remote-src="{html_lib.escape(url, quote=True)}"'

        cleaned = re.sub(re.escape(prefix) + r'(\d+)"', restore, cleaned)
    return SanitizedHtml(html=cleaned, blocked_remote_images=len(policy.blocked))
