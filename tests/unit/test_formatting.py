"""escape_markdown: untrusted text shows as itself, with no link, image, HTML or icon from it."""

from __future__ import annotations

import pytest

from services.core.formatting import escape_heading, escape_markdown
from tests.hostile import (
    PAYLOADS,
    foreign_references,
    hostile,
    hostile_registry_name,
    rendered_text,
)

WORD_JOINER = "\u2060"
TRICKY = (
    *PAYLOADS,
    "HTTP://EVIL.EXAMPLE/shout",
    "WWW.evil.example",
    "http&colon;//evil.example/entity",
    "[x](http&#58;&#47;&#47;evil.example&#47;entity)",
    "javascript:alert(1)",
    "[ref]\n\n[ref]: http://evil.example/definition",
    "a\\[b](http://evil.example/backslash)",
    "heading\n===",
    "| a | b |\n|---|---|\n| c | d |",
    "$x^2$ ~~struck~~ **bold** `code` # hash",
)


@pytest.mark.parametrize("payload", [p for p in PAYLOADS if not p.startswith(":")])
def test_every_link_payload_is_a_foreign_link_or_image_when_not_escaped(payload: str) -> None:
    """The oracle and the payloads agree, so an empty finding below means something. (The
    icon payload is no link: the browser test checks icons.)"""
    assert foreign_references(payload), payload


def test_a_registry_name_still_links_away_although_it_has_no_colon_or_slash() -> None:
    name = hostile_registry_name("fdxmodel")
    assert ":" not in name and "/" not in name
    assert len(foreign_references(name)) >= 4, foreign_references(name)


@pytest.mark.parametrize("text", [*TRICKY, hostile("fdx"), hostile_registry_name("fdx")])
def test_escaped_text_links_and_loads_nothing(text: str) -> None:
    assert foreign_references(escape_markdown(text)) == []
    assert foreign_references(f"**Label** {escape_markdown(text)} · more") == []


@pytest.mark.parametrize("text", [t for t in TRICKY if "\n" not in t])
def test_escaped_text_reads_exactly_as_it_was(text: str) -> None:
    assert rendered_text(escape_markdown(text)).replace(WORD_JOINER, "") == text


def test_autolinks_icons_and_shortcodes_are_broken_by_an_invisible_word_joiner() -> None:
    escaped = escape_markdown("see http://x.y and www.x.y or a@x.y :material/home: :smile:")
    visible = rendered_text(escaped)
    assert "http:" + WORD_JOINER + "//x.y" in visible
    assert "www" + WORD_JOINER + ".x.y" in visible
    assert "a" + WORD_JOINER + "@x.y" in visible
    assert ":" + WORD_JOINER + "material/home:" in visible


def test_plain_colons_and_at_signs_are_left_as_they_are() -> None:
    """Text that cannot become a link reads (and is found by a search) exactly as written."""
    text = "proposed for @champion (rmse: 54, at 10: 30)"
    assert WORD_JOINER not in rendered_text(escape_markdown(text))


def test_repeated_hyphens_and_dots_are_kept_apart_so_no_dash_or_ellipsis_replaces_them() -> None:
    escaped = escape_markdown("a -- b ... c")
    visible = rendered_text(escaped)
    assert "--" not in visible and ".." not in visible  # a word joiner between each pair
    assert visible.replace(WORD_JOINER, "") == "a -- b ... c"


def test_a_heading_keeps_a_multi_line_name_on_one_line() -> None:
    assert escape_heading("first line\nsecond\r\nthird") == "first line second third"
