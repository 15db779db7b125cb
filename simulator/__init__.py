"""mlarch simulator: SimPy control plane and vectorised data plane running the real pipeline.

    from scenarios import load_scenario
    from simulator import simulate
    result = simulate(load_scenario("spam"), seed=1)
    result.metrics["latency_ms"]["p99"]
"""
from .engine import Result, TooLarge, simulate

__all__ = ["simulate", "Result", "TooLarge"]
