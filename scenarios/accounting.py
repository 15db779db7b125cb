"""Billing conventions both sides use: what a month is and what stored data weighs.

These are definitions of the cost model (like the prices in `costs:`), not predictions:
the advisor prices a design with them and the simulator bills what it ran with them.
"""
from __future__ import annotations

MONTH_S = 730 * 3600.0          # the cloud billing month (730 h), as on the providers' price pages
EXAMPLE_OVERHEAD_BYTES = 16     # label and timestamp stored with each training example


def example_bytes(features: int) -> int:
    """Bytes per stored training example: float64 features plus label and timestamp."""
    return 8 * features + EXAMPLE_OVERHEAD_BYTES
