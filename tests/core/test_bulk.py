"""Bulk helpers: the collector pause around an import chunk."""

from __future__ import annotations

import gc

import pytest

from rapport.core.bulk import gc_paused


def test_the_collector_is_back_after_a_chunk_even_when_the_chunk_fails() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), gc_paused():
        _ = 1 / 0
    assert gc.isenabled()


def test_a_pause_inside_a_pause_leaves_the_collector_off_until_the_outer_one_ends() -> None:
    with gc_paused():
        with gc_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
