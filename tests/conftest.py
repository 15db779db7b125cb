import os

import pytest
from typer.testing import CliRunner

# tests compute every tabulated threshold afresh (simulator.thresholds keeps none on disk), so
# a changed computation is always what they see; test_thresholds_store tests the store itself
os.environ["MLARCH_CACHE_DIR"] = ""

from mlarch.cli import app


@pytest.fixture
def cli():
    """Run the mlarch CLI in-process; returns click's Result (stdout, stderr, exit_code)."""
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, [str(a) for a in args])
    return run


SPAM_MIN = """\
name: mini
traffic:
  rate: 50/s
  cardinality: 1000
  peakedness: {zipf_s: 1.0}
data:
  velocity: 1e5/d
  concept_half_life: 3d
model:
  inference_time: {distribution: exponential, mean: 10ms}
slo:
  latency_p99: 100ms
"""


@pytest.fixture
def write(tmp_path):
    def w(text, name="s.yaml"):
        p = tmp_path / name
        p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
        return p
    return w


# the hand-worked scenario of tests/test_mutation_costs.py and test_mutation_schedule.py
MUT_SCENARIO = """\
name: mut
horizon: 2d
traffic:
  rate: 40/s
  diurnal_amplitude: 0.5
  cardinality: 100000
  peakedness: {zipf_s: 1.1}
data:
  velocity: 2e5/d
  concept_half_life: 3d
  label_delay: 30m
  label_noise: 0.05
  features: 8
  batch_interval: 1h
model:
  inference_time: {distribution: exponential, mean: 10ms}
  train_time: {fixed: 5m, per_million_examples: 20m}
  training_window: 2d
  trainers: 4
serving:
  batch_workers: 5
slo:
  latency_p99: 100ms
"""
