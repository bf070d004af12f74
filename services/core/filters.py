"""MLflow filter clauses for names and values that MLflow accepts but its filter syntax may not.

MLflow's search filters quote a string with ``'`` or ``"`` and have no escape: a value holding
both quote kinds, or a backslash (which MLflow's tokenizer reads as an escape), cannot be put
into a filter. MLflow still accepts such a value as a model name, an experiment name or a tag.
For those, :func:`equals` falls back to a broader ``LIKE`` on the longest part that can be
quoted; the caller keeps only the exact matches. Every caller narrows, so both routes give the
same answer.
"""

from __future__ import annotations

import re

_UNQUOTABLE = re.compile(r"""['"\\]+""")


def literal(value: str) -> str | None:
    """``value`` as a filter string literal, or None when MLflow's syntax cannot express it."""
    if "\\" in value:
        return None
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def equals(field: str, value: str) -> str | None:
    """A clause matching every entity whose ``field`` equals ``value``, and perhaps others.

    Exact when :func:`literal` can quote ``value``; otherwise ``field LIKE '%part%'`` on the
    longest part without quotes or backslashes (``%`` and ``_`` in it only widen the match);
    None (no condition at all) when no such part exists. Narrow the results on the client.

    Args:
        field: What to compare, as MLflow's filter spells it: ``name``, ``tags.`key```.
        value: The exact value wanted.
    """
    quoted = literal(value)
    if quoted is not None:
        return f"{field} = {quoted}"
    part = max(_UNQUOTABLE.split(value), key=len)
    return f"{field} LIKE '%{part}%'" if part else None


def tag_equals(key: str, value: str) -> str | None:
    """:func:`equals` for a run tag; ``key`` must not hold a backtick (MLflow's keys cannot)."""
    return equals(f"tags.`{key}`", value)


def all_of(*clauses: str | None) -> str:
    """The clauses joined with ``and``; None clauses (no condition) are left out."""
    return " and ".join(clause for clause in clauses if clause)
