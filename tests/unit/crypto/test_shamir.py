"""Shamir secret sharing: any t shares rebuild, fewer or repeated ones are refused."""

from __future__ import annotations

import itertools
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jointly.crypto import shamir
from jointly.crypto.shamir import PRIME, Share, reconstruct, split
from jointly.errors import ConfigError

field_elements = st.integers(min_value=0, max_value=PRIME - 1)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(field_elements, min_size=1, max_size=3),
    n=st.integers(min_value=1, max_value=7),
    data=st.data(),
)
def test_any_t_shares_rebuild_every_secret(values: list[int], n: int, data: st.DataObject) -> None:
    t = data.draw(st.integers(min_value=1, max_value=n))
    xs = data.draw(st.lists(st.integers(min_value=1, max_value=2**32 - 1), min_size=n, max_size=n, unique=True))
    shares = split(values, t, xs)
    assert [s.x for s in shares] == xs
    assert all(len(s.y) == len(values) for s in shares)
    chosen = data.draw(st.permutations(shares))[:t]
    assert reconstruct(chosen, t) == values
    assert reconstruct(shares, t) == values  # more than t: the first t are used


@settings(max_examples=20, deadline=None)
@given(secret=st.binary(min_size=0, max_size=32))
def test_bytes_secrets_and_share_bytes_round_trip(secret: bytes) -> None:
    shares = split([secret], 3, [1, 2, 3, 4])
    again = [Share.from_bytes(s.to_bytes()) for s in shares]
    assert again == shares
    value = reconstruct(again[1:], 3)[0]
    assert shamir.to_bytes(value, len(secret)) == secret


def test_every_subset_of_size_t_agrees() -> None:
    secret = secrets.token_bytes(32)
    shares = split([secret], 3, range(1, 6))
    for subset in itertools.combinations(shares, 3):
        assert shamir.to_bytes(reconstruct(list(subset), 3)[0]) == secret


def test_fewer_than_t_shares_are_refused() -> None:
    shares = split([5], 3, [1, 2, 3])
    with pytest.raises(ConfigError, match="threshold 3"):
        reconstruct(shares[:2], 3)
    assert all(s.y != (5,) for s in shares)


def test_duplicate_points_and_mixed_widths_are_refused() -> None:
    shares = split([1, 2], 2, [1, 2, 3])
    with pytest.raises(ConfigError, match="same x"):
        reconstruct([shares[0], shares[0]], 2)
    with pytest.raises(ConfigError, match="different numbers"):
        reconstruct([shares[0], shares[1].only(0)], 2)
    with pytest.raises(ConfigError, match="distinct"):
        split([1], 2, [1, 1, 2])


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ConfigError):
        split([1], 0, [1, 2])
    with pytest.raises(ConfigError, match="more than"):
        split([1], 3, [1, 2])
    with pytest.raises(ConfigError):
        split([PRIME], 1, [1])
    with pytest.raises(ConfigError):
        split([b"x" * 33], 1, [1])
    with pytest.raises(ConfigError):
        split([1], 1, [0])
    with pytest.raises(ConfigError):
        split([], 1, [1])
    with pytest.raises(ConfigError, match="malformed"):
        Share.from_bytes(b"\x00\x00\x00\x01" + b"\x00" * 32)
    with pytest.raises(ConfigError):
        Share.from_bytes(b"\x00\x00\x00\x01" + (PRIME).to_bytes(33, "big"))  # not a field element
    with pytest.raises(ConfigError, match="does not fit"):
        shamir.to_bytes(1 << 256)


def test_a_wrong_share_gives_a_wrong_secret() -> None:
    shares = split([42], 2, [1, 2])
    bad = Share(shares[1].x, ((shares[1].y[0] + 1) % PRIME,))
    assert reconstruct([shares[0], bad], 2) != [42]


def test_repr_hides_share_values() -> None:
    share = split([123456789], 1, [1])[0]
    assert "123456789" not in repr(share) and "secrets=1" in repr(share)
