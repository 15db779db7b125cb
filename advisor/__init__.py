"""The advisor: closed-form theory and the training and serving decisions.

Imports `scenarios` only (never the simulator, which checks it independently).

    from scenarios import load_scenario
    from advisor import advise
    advice = advise(load_scenario("spam"))
    advice.design, advice.predicted.latency_p99_ms
"""
from scenarios.design import Design

from .advice import Advice, advise, design_for
from .costs import Prediction, predict

__all__ = ["Advice", "Design", "Prediction", "advise", "design_for", "predict"]
