"""Ratio math of InplaceScaling. Pure.

A Target follows its Source at `ceil(source x ratio)`, computed exactly in Decimal so
that e.g. 3 x 0.333 or 10 x 0.1 never depends on binary floating point.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, localcontext


def target_replicas(source: int, ratio: Decimal) -> int:
    """ceil(source x ratio) for source >= 0 and ratio >= 0."""
    if source < 0 or ratio < 0:
        raise ValueError(f"source ({source}) and ratio ({ratio}) must be >= 0")
    with localcontext() as context:
        # Enough digits for any int32 replica count times any ratio written in a spec.
        context.prec = 60
        product = Decimal(source) * ratio
        return int(product.to_integral_value(rounding=ROUND_CEILING))
