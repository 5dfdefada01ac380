"""One documented seed derivation for every stream (cbtflow.seeds)."""

import itertools

import pytest

from cbtflow.seeds import STREAMS, derive_seed


def test_seeds_are_reproducible_in_range_and_distinct_across_streams_and_indices():
    drawn = {}
    for stream, seed, a, b in itertools.product(STREAMS, range(4), range(25), range(4)):
        value = derive_seed(seed, stream, a, b)
        assert 0 <= value < 2**31
        assert value == derive_seed(seed, stream, a, b)
        drawn[(stream, seed, a, b)] = value
    assert len(set(drawn.values())) == len(drawn), "two draws of the run share a seed"


def test_the_old_arithmetic_collision_is_gone():
    # seed * 7 + number gave seed 1's eighth summary and seed 2's first the same seed (15).
    assert derive_seed(1, "course.summary", 8) != derive_seed(2, "course.summary", 1)


def test_an_unknown_stream_is_an_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="course.session"):
        derive_seed(1, "course.sesion", 1)
