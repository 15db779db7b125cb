"""mlarch simulator: SimPy control plane and vectorised data plane running the real pipeline.

Imports `scenarios` only: it runs the design it is given and never asks the advisor.

    from scenarios import load_scenario
    from scenarios.design import Design
    from simulator import simulate
    result = simulate(load_scenario("spam"), Design("periodic", 6 * 3600.0, "dynamic", None, 12), seed=1)
    result.metrics["latency_ms"]["p99"]
"""
from .engine import Result, TooLarge, simulate

__all__ = ["simulate", "Result", "TooLarge"]
