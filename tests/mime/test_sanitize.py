"""HTML made safe for display, and HTML made into text."""

from __future__ import annotations

import pytest

from postroom.mail.mime import html_to_text, sanitize_html


def clean(html: str, **kwargs: object) -> str:
    return sanitize_html(html, **kwargs).html  # type: ignore[arg-type]


class TestScripts:
    @pytest.mark.parametrize(
        "html",
        [
            "<script>alert(1)</script>ok",
            "<SCRIPT SRC=//evil.example/x.js></SCRIPT>ok",
            '<img src="x" onerror="alert(1)">ok',
            "<body onload=alert(1)>ok",
            "<svg><script>alert(1)</script></svg>ok",
            '<iframe src="https://evil.example"></iframe>ok',
            '<object data="x.swf"></object><embed src="x.swf">ok',
            '<form action="https://evil.example"><input name=p><button>Go</button></form>ok',
            '<meta http-equiv="refresh" content="0;url=https://evil.example">ok',
            '<base href="https://evil.example/">ok',
            '<link rel=stylesheet href="https://evil.example/x.css">ok',
            "<style>body{background:url(https://evil.example/t.gif)}</style>ok",
            '<math><mi xlink:href="javascript:alert(1)">x</mi></math>ok',
            "<!-- <script>alert(1)</script> -->ok",
        ],
    )
    def test_active_content_is_removed(self, html: str) -> None:
        out = clean(html).lower()
        for needle in ("<script", "onerror", "onload", "<iframe", "<object", "<embed", "<form",
                       "<input", "<meta", "<base", "<link", "<style", "javascript:", "evil.example"):  # fmt: skip
            assert needle not in out, (html, out)
        assert "ok" in out

    @pytest.mark.parametrize(
        "href",
        [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "vbscript:x",
            "data:text/html,<script>alert(1)</script>",
        ],
    )
    def test_dangerous_links_lose_their_href(self, href: str) -> None:
        out = clean(f'<a href="{href}">click</a>')
        assert "href" not in out and "click" in out

    def test_links_open_safely(self) -> None:
        out = clean('<a href="https://example.com/x?a=1&amp;b=2" target="_self" rel="opener">x</a>')
        assert 'href="https://example.com/x?a=1&amp;b=2"' in out
        assert 'target="_blank"' in out
        assert 'rel="noopener noreferrer nofollow"' in out
        assert "_self" not in out and '"opener"' not in out

    def test_mailto_and_tel_links_stay(self) -> None:
        out = clean('<a href="mailto:a@example.com">m</a><a href="tel:+4930123">t</a>')
        assert 'href="mailto:a@example.com"' in out and 'href="tel:+4930123"' in out

    def test_relative_urls_are_dropped(self) -> None:
        # They would resolve against Postroom itself.
        out = clean('<a href="/admin/delete">x</a><img src="/api/messages">')
        assert "/admin" not in out and "/api" not in out

    def test_id_and_class_are_dropped(self) -> None:
        out = clean('<div id="csrf_token" class="btn btn-danger" name="x">t</div>')
        assert "id=" not in out and "class=" not in out and "name=" not in out


class TestFormatting:
    def test_tables_and_formatting_survive(self) -> None:
        html = (
            '<table width="100%" cellpadding="4" border="0"><tr><td bgcolor="#eee" colspan="2" '
            'align="center"><b>Bold</b> <i>it</i> <u>u</u> <font color="red" face="Arial">f</font>'
            "</td></tr></table><ul><li>one</li></ul><blockquote>q</blockquote><pre>p</pre><hr>"
        )
        out = clean(html)
        for needle in ('width="100%"', 'cellpadding="4"', 'bgcolor="#eee"', 'colspan="2"',
                       "<b>Bold</b>", "<i>it</i>", "<u>u</u>", 'color="red"', "<li>one</li>",
                       "<blockquote>q</blockquote>", "<pre>p</pre>", "<hr>"):  # fmt: skip
            assert needle in out, needle

    def test_inline_styles_are_filtered(self) -> None:
        out = clean(
            '<p style="color: red; position: fixed; top: 0; z-index: 9999; font-size: 12px">x</p>'
        )
        assert "color:red" in out.replace(" ", "") and "font-size:12px" in out.replace(" ", "")
        assert "position" not in out and "z-index" not in out and "top" not in out


class TestImages:
    def test_remote_images_blocked_by_default(self) -> None:
        result = sanitize_html(
            '<img src="https://tracker.example/p.gif?u=1&amp;m=2" alt="logo">'
            '<img src="http://cdn.example/a.png"><img src="//cdn.example/b.png">'
        )
        assert result.blocked_remote_images == 3
        assert "src=" not in result.html.replace("data-remote-src=", "")
        assert 'data-remote-src="https://tracker.example/p.gif?u=1&amp;m=2"' in result.html
        assert 'alt="logo"' in result.html

    def test_remote_images_allowed_on_request(self) -> None:
        result = sanitize_html(
            '<img src="https://cdn.example/a.png"><img src="//cdn.example/b.png">',
            allow_remote_images=True,
        )
        assert result.blocked_remote_images == 0
        assert 'src="https://cdn.example/a.png"' in result.html
        assert 'src="https://cdn.example/b.png"' in result.html

    def test_remote_css_backgrounds_blocked(self) -> None:
        html = "<td style=\"color: blue; background: url('https://tracker.example/bg.gif')\">x</td>"
        blocked = sanitize_html(f"<table><tr>{html}</tr></table>")
        assert "tracker" not in blocked.html and blocked.blocked_remote_images == 1
        assert "color" in blocked.html
        allowed = sanitize_html(f"<table><tr>{html}</tr></table>", allow_remote_images=True)
        assert "tracker.example" in allowed.html

    def test_background_attribute_dropped(self) -> None:
        out = clean(
            '<table background="https://tracker.example/bg.gif"><tr><td>x</td></tr></table>'
        )
        assert "tracker" not in out

    def test_cid_images_are_mapped(self) -> None:
        html = (
            '<img src="cid:logo@x"><img src="CID:%3COther@X%3E"><img src="cid:unknown@x" alt="u">'
        )
        result = sanitize_html(
            html, cid_map={"<logo@x>": "/messages/7/inline/1", "other@x": "/messages/7/inline/2"}
        )
        assert 'src="/messages/7/inline/1"' in result.html
        assert 'src="/messages/7/inline/2"' in result.html
        assert "cid:" not in result.html.lower()
        assert 'alt="u"' in result.html
        assert result.blocked_remote_images == 0

    def test_data_images_only(self) -> None:
        out = clean(
            '<img src="data:image/png;base64,iVBORw0KGgo=">'
            '<img src="data:text/html;base64,PHNjcmlwdD4=">'
            '<img src="data:image/svg+xml;utf8,&lt;svg&gt;">'
        )
        assert 'src="data:image/png;base64,iVBORw0KGgo="' in out
        assert "text/html" not in out
        assert out.count("<img") == 3

    def test_malformed_html_does_not_raise(self) -> None:
        for html in ("<", "<img src=", "<a href='x", "<table><td>x", "\x00\x01<b>", "<" * 10000):
            sanitize_html(html)


class TestHtmlToText:
    def test_blocks_and_breaks(self) -> None:
        html = "<html><head><title>T</title><style>p{}</style></head><body><h1>Title</h1><p>One<br>two</p><div>three</div></body></html>"
        assert html_to_text(html) == "Title\n\nOne\ntwo\n\nthree"

    def test_lists_tables_links(self) -> None:
        html = (
            "<ul><li>a</li><li>b</li></ul>"
            "<table><tr><td>x</td><td>y</td></tr><tr><td>z</td></tr></table>"
            '<p><a href="https://example.com/track">Track it</a> <a href="https://e.com">https://e.com</a></p>'
        )
        assert html_to_text(html) == (
            "- a\n- b\n\nx\ty\nz\n\nTrack it <https://example.com/track> https://e.com"
        )

    def test_entities_whitespace_and_pre(self) -> None:
        html = "<p>caf&eacute;&nbsp;&amp;   tea\n\n</p><pre>  keep\n   this</pre>"
        assert html_to_text(html) == "café & tea\n\n  keep\n   this"

    def test_scripts_are_not_text(self) -> None:
        assert html_to_text("<script>var x = 1;</script><p>visible</p>") == "visible"

    def test_image_alt_text(self) -> None:
        assert (
            html_to_text('<p><img src="x" alt="Company logo"> Hello</p>') == "[Company logo] Hello"
        )

    def test_broken_markup(self) -> None:
        assert html_to_text("<p>unclosed <b>bold <i>both") == "unclosed bold both"
        assert html_to_text("") == ""
        assert html_to_text("<<<>>>") is not None


class TestHostileSizes:
    def test_deeply_nested_html_is_shown_as_text(self) -> None:
        # html5ever is quadratic in the depth of unclosed block elements
        # (100,000 nested <div>s took a minute); such HTML becomes text.
        result = sanitize_html("<div>" * 20_000 + "<script>x</script>hello")
        assert result.html == "<pre>hello</pre>"

    def test_many_flat_elements_are_still_html(self) -> None:
        html = "<table><tr>" + "<td>cell" * 5000 + "</table>" + "<p>para" * 5000
        out = clean(html)
        assert out.startswith("<table>") and out.count("<td>") == 5000

    def test_huge_style_attribute_is_dropped(self) -> None:
        out = clean('<p style="' + "url(" * 5000 + '">x</p>')
        assert out == "<p>x</p>"
