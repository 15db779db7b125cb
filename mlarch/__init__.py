"""mlarch, the application: the command line, rendering, output files, sweeps, plots, the
HTML report and selfcheck — the parts that use both the advisor and the simulator.

Imports run one way: scenarios ← advisor, simulator ← mlarch (docs/architecture.md).
"""
__version__ = "0.1.0"
