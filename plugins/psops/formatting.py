"""How amounts are written for people: approval requests, digests, summaries."""

from __future__ import annotations


def money(value) -> str:
    """An amount with thousands separators and two decimals ("1,234.50"); None is 0."""
    return f"{float(value or 0):,.2f}"
