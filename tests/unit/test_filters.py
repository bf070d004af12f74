"""Filter clauses for any name: exact where MLflow's syntax can quote it, broader otherwise."""

from __future__ import annotations

import pytest

from services.core import filters


@pytest.mark.parametrize(
    ("value", "clause"),
    [
        ("wine", "name = 'wine'"),
        ("bob's", 'name = "bob\'s"'),
        ('say "hi"', "name = 'say \"hi\"'"),
        ("100%_sure", "name = '100%_sure'"),
        ("line\nbreak", "name = 'line\nbreak'"),
    ],
)
def test_a_name_the_syntax_can_quote_is_matched_exactly(value: str, clause: str) -> None:
    assert filters.equals("name", value) == clause


@pytest.mark.parametrize(
    ("value", "clause"),
    [
        ("""it's "both" kinds""", "name LIKE '% kinds%'"),
        ("back\\slash", "name LIKE '%slash%'"),
        ("trailing\\", "name LIKE '%trailing%'"),
    ],
)
def test_a_name_it_cannot_quote_is_matched_on_its_longest_quotable_part(
    value: str, clause: str
) -> None:
    assert filters.literal(value) is None
    assert filters.equals("name", value) == clause


def test_a_name_of_only_quotes_and_backslashes_has_no_condition() -> None:
    assert filters.equals("name", "'\"\\") is None
    assert filters.all_of(filters.equals("name", "'\""), "status = 'READY'") == "status = 'READY'"


def test_tag_clauses_quote_the_key_with_backticks() -> None:
    assert filters.tag_equals("flightdeck.model", "a b") == "tags.`flightdeck.model` = 'a b'"
    assert filters.all_of(None, None) == ""
