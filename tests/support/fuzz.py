"""Mutating well-formed bytes for the property tests: a few edits (insert some bytes, remove a few)
at positions that wrap around the data, so any position is a place in it.

    mutated = edits(10_000, 6, 8, [b'"', b","], max_edits=6).map(lambda e: mutate(SAMPLE, e))
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

Edit = tuple[int, bytes, int]  # (position, bytes inserted there, how many bytes after it are removed)


def mutate(data: bytes, edits: list[Edit]) -> bytes:
    for position, inserted, removed in edits:
        at = position % (len(data) + 1)
        data = data[:at] + inserted + data[at + removed :]
    return data


def edits(
    max_position: int, max_inserted: int, max_removed: int, typical: Sequence[bytes], *, max_edits: int
) -> st.SearchStrategy[list[Edit]]:
    """Lists of edits for :func:`mutate`: up to ``max_edits``, each inserting random bytes (at most
    ``max_inserted``) or one of the ``typical`` ones, and removing up to ``max_removed`` bytes."""
    return st.lists(
        st.tuples(
            st.integers(0, max_position),
            st.one_of(st.binary(max_size=max_inserted), st.sampled_from(list(typical))),
            st.integers(0, max_removed),
        ),
        max_size=max_edits,
    )
