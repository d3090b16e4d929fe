"""Suggestions for mistyped names: ``did you mean `batch_size`?``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean", "one_edit_apart"]

SIMILARITY = 0.75  # difflib's ratio 2M/T: a dropped, doubled or swapped letter in a short name


def _fold(name: str) -> str:
    return name.lower().replace("-", "_")


def one_edit_apart(a: str, b: str) -> bool:
    """Whether one letter inserted, dropped, replaced, or two neighbours swapped, turn `a`
    into `b`."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
        return len(diff) == 1 or swapped and a[diff[1]] == b[diff[0]]
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _similarity(name: str, candidate: str) -> float:
    """How alike two dotted names of the same depth are: compared by their last parts when
    the rest is the same (``spectral.kk``, ``spectral.k``), else as whole names; 1 for one
    edit apart, else difflib's ratio."""
    parent, _, leaf = name.rpartition(".")
    other_parent, _, other_leaf = candidate.rpartition(".")
    if parent == other_parent:
        name, candidate = leaf, other_leaf
    name, candidate = _fold(name), _fold(candidate)
    if one_edit_apart(name, candidate) and min(len(name), len(candidate)) >= 1:
        return 1.0
    return difflib.SequenceMatcher(None, name, candidate).ratio()


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate with as many dots as `name` most like it (`_similarity` >= `SIMILARITY`),
    or None. A candidate that differs only in case or in ``_``/``-`` wins."""
    depth = name.count(".")
    pool = sorted({c for c in candidates if c.count(".") == depth and c != name})
    scored = [(_similarity(name, c), c) for c in pool]
    best = max(scored, default=(0.0, None), key=lambda pair: pair[0])
    return best[1] if best[0] >= SIMILARITY else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean `X`?"`` for the closest candidate, or ``""`` when none is close."""
    match = closest(name, candidates)
    return f"; did you mean `{match}`?" if match is not None else ""
