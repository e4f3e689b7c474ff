"""ratios: ceil(source x ratio), exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rsg_operator.ratios import target_replicas


@pytest.mark.parametrize(
    "source, ratio, expected",
    [
        (3, "1.0", 3),
        (3, "2.0", 6),
        (5, "2.5", 13),
        (4, "0.5", 2),
        (5, "0.5", 3),
        (3, "0.333", 1),
        (10, "0.1", 1),  # 1.0000000000000000555 in binary floating point would give 2
        (0, "2.5", 0),
        (7, "0", 0),
        (2**31 - 1, "1000", (2**31 - 1) * 1000),
        (1, "0.0000001", 1),
    ],
)
def test_target_is_the_ceiling_of_source_times_ratio(
    source: int, ratio: str, expected: int
) -> None:
    assert target_replicas(source, Decimal(ratio)) == expected


def test_negative_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        target_replicas(-1, Decimal(1))


@given(
    st.integers(min_value=0, max_value=10**6),
    st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
)
def test_result_is_the_smallest_integer_not_below_the_product(source: int, ratio: Decimal) -> None:
    result = target_replicas(source, ratio)
    assert result >= source * ratio > result - 1 or (result == 0 and source * ratio == 0)
