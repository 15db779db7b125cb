"""The mlarch command line: parse, call the library, render. Nothing else lives here.

Heavy modules (simulator, pandas, matplotlib) are imported inside the commands that need
them so that `mlarch advise` starts fast.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from scenarios.errors import ScenarioError

from .files import OutputError, RunDir, atomic_write, check_dir_output, check_file_output, write_run

def _plain_usage_name(self) -> str:
    """`SCENARIO`, `[FILE]`, `LOG...` as click prints them; typer >= 0.16 wraps required
    arguments in braces (`{scenario}`), which reads like a set of choices."""
    name = self.metavar or self.name.upper()
    name = name if self.required else f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


if hasattr(getattr(typer.core, "TyperArgument", None), "_usage_display_name"):
    typer.core.TyperArgument._usage_display_name = _plain_usage_name

# value names in --help: what the value is (`--horizon DURATION`, `--seed N`), not the Python
# type typer >= 0.16 shows (`<str>`, `<int range>`, `<path>`); arguments already say it by name
_PLAIN_VALUE_NAMES = {"horizon": "DURATION", "seed": "N", "seeds": "N", "jobs": "N", "random_seeds": "N",
                      "runs": "N", "out": "DIR", "output": "FILE", "from_": "PRESET", "base": "PRESET"}
_typer_param = getattr(typer.core, "_TyperParameter", None)
_typer_display_type = getattr(_typer_param, "display_type", None)


def _plain_display_type(self, ctx) -> str:
    if isinstance(self, typer.core.TyperArgument):
        return ""
    label = _typer_display_type(self, ctx)
    if "|" in label:                       # a choice: its values, as typer lists them
        return label.strip("<>")
    name = (self.name or "").lower()
    if name in _PLAIN_VALUE_NAMES:
        return _PLAIN_VALUE_NAMES[name]
    if name.endswith("_col"):
        return "COLUMN"
    kind = label.strip("<>").split()[0] if label.strip("<>") else "str"
    return {"int": "N", "float": "X", "str": "TEXT"}.get(kind, "PATH" if "path" in label or "file" in label
                                                          else kind.upper())


if _typer_display_type is not None:
    _typer_param.display_type = _plain_display_type

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="mlarch: decide how to build a production ML system, and prove it by simulation.\n\n"
                       "SCENARIO is a YAML file or a preset name (see `mlarch presets`).")
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SetOpt = typer.Option(None, "--set", metavar="PATH=VALUE",
                      help="Override a scenario field, e.g. --set traffic.rate=120/s (repeatable).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout instead of tables.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress on stderr (also MLARCH_QUIET=1).")
ForceDirOpt = typer.Option(False, "--force", help="Replace a non-empty --out directory whole.")


AllowImportOpt = typer.Option(None, "--allow-import", metavar="MODULE",
                              help="Allow model.estimator classes from this module (repeatable; sklearn is always "
                                   "allowed; importing runs its code). Also: MLARCH_ALLOW_IMPORT=mod1,mod2.")


def _allow_imports(modules: Optional[List[str]]) -> tuple:
    """Add --allow-import modules to MLARCH_ALLOW_IMPORT (inherited by sweep workers)."""
    import os
    import re
    mods = tuple(m.strip() for m in modules or [] if m.strip())
    for m in mods:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", m):
            raise BadInput(f"--allow-import {m}: expected a module name such as mypackage.models")
    if mods:
        cur = [x for x in os.environ.get("MLARCH_ALLOW_IMPORT", "").split(",") if x.strip()]
        os.environ["MLARCH_ALLOW_IMPORT"] = ",".join(dict.fromkeys(cur + list(mods)))
    return mods


DEFAULT_REQUESTS = 2e7   # simulator.slices.DEFAULT_REQUEST_BUDGET, without importing the simulator


def _progress_quiet(quiet: bool) -> None:
    from .progress import set_quiet
    set_quiet(quiet)


class BadInput(Exception):
    """Bad input other than a scenario file (a flag value, an output path)."""


def one_line(text: str) -> str:
    """Escape control characters and line breaks so an error stays on one line."""
    import re
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", lambda m: repr(m.group())[1:-1], text)


def guarded(fn):
    """Turn bad input into one line on stderr and exit code 2, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except (ScenarioError, BadInput, OutputError) as e:
            err.print(f"mlarch: error: {one_line(str(e))}", markup=False, emoji=False)   # ":two:" stays text
            raise typer.Exit(2)
        except Exception as e:
            # simulator.TooLarge, simulator.estimator.EstimatorError, calibrate.CalibrateError (by name:
            # importing them here would load the simulator at start-up)
            if type(e).__name__ in ("TooLarge", "EstimatorError", "CalibrateError"):
                err.print(f"mlarch: error: {one_line(str(e))}", markup=False)
                raise typer.Exit(2)
            raise
        except KeyboardInterrupt:
            err.print("mlarch: interrupted")
            raise typer.Exit(130)
    return wrapper


def _load(spec: str, sets: Optional[List[str]]):
    from scenarios import load_scenario
    return load_scenario(spec, sets or [])


@app.command()
@guarded
def presets(json_: bool = JsonOpt):
    """List the bundled presets with one-line descriptions."""
    from scenarios import preset_description, preset_names

    from . import render
    items = [{"name": n, "description": preset_description(n)} for n in preset_names()]
    if json_:
        print(render.dumps(items))
        return
    for it in items:
        out.print(f"[bold]{it['name']:<20}[/bold] {it['description']}")


@app.command()
@guarded
def init(file: Path = typer.Argument(..., metavar="FILE", help="Scenario file to write."),
         from_: str = typer.Option("spam", "--from", help="Preset to copy."),
         force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")):
    """Write a commented copy of a preset to start a scenario from."""
    from scenarios import preset_names, preset_text
    if from_ not in preset_names():
        raise BadInput(f"--from {from_}: no such preset (presets: {', '.join(preset_names())})")
    if file.exists() and not file.is_dir() and not force:
        raise BadInput(f"{file}: already exists (use --force to overwrite)")
    check_file_output(file, "")
    text = preset_text(from_)
    name = file.stem.lower().replace("_", "-")
    import re
    if re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", name):
        text = re.sub(r"(?m)^name: \S+", f"name: {name}", text, count=1)
    atomic_write(file, f"# Scenario started from the preset '{from_}' by `mlarch init`.\n"
                       f"# Check: mlarch advise {file}\n" + text)
    err.print(f"wrote {file} (from preset {from_}); next: mlarch advise {file}")


@app.command()
@guarded
def advise(scenario: str = typer.Argument(..., metavar="SCENARIO", help="Scenario YAML file or preset name."),
           set_: Optional[List[str]] = SetOpt, json_: bool = JsonOpt):
    """Score static vs dynamic training and static vs dynamic vs hybrid serving, with reasons
    and predicted figures."""
    from . import render
    from advisor import advise as run_advise
    sc = _load(scenario, set_)
    adv = run_advise(sc).to_json()
    if json_:
        print(render.dumps(adv))
    else:
        render.advice(out, adv, sc)


@app.command()
@guarded
def compare(scenarios: List[str] = typer.Argument(..., metavar="SCENARIO", help="Scenario files or preset names."),
            set_: Optional[List[str]] = SetOpt,
            simulate: bool = typer.Option(False, "--simulate", help="Also run each scenario in the simulator."),
            seed: Optional[int] = typer.Option(None, "--seed", help="Simulation seed (default: each scenario's)."),
            horizon: Optional[str] = typer.Option(None, "--horizon", help="Simulated span, e.g. 1d."),
            out_dir: Optional[Path] = typer.Option(None, "--out", help="With --simulate: write a comparison figure here."),
            force: bool = ForceDirOpt,
            allow_import: Optional[List[str]] = AllowImportOpt,
            json_: bool = JsonOpt, quiet: bool = QuietOpt):
    """One row per scenario, side by side: the course's use-case table, with numbers."""
    _progress_quiet(quiet)
    _allow_imports(allow_import)
    from . import render
    from advisor import advise as run_advise
    from advisor import predict
    if out_dir is not None and not simulate:
        raise BadInput(f"--out {out_dir}: the comparison figure needs --simulate")
    _horizon_s(horizon)
    if out_dir is not None:
        check_dir_output(out_dir, "--out", force)    # before any simulation
    # advice is planned on each scenario as written; --horizon only changes the span simulated
    specs = [(s_, _load(s_, set_)) for s_ in scenarios]
    rows = []
    for _, sc in specs:
        adv = run_advise(sc)
        rows.append({"scenario_obj": sc, "advice": adv.to_json(), "design": adv.design})
    if simulate:
        from .progress import is_quiet, simulate_with_bar
        for (spec, planned), r in zip(specs, rows):
            sc = _load(spec, (set_ or []) + _horizon_set(horizon))
            if not is_quiet():   # the bar (after its delay) names the scenario too; this says it at once
                err.print(f"simulating {sc.name} ...")
            r["simulated"] = simulate_with_bar(sc, r["design"], seed=seed,
                                               planning_horizon_s=planned.horizon).to_json()
            # the advisor's figures for the same span, so the two rows compare like with like
            r["predicted_span"] = predict(sc, r["design"], planning_horizon_s=planned.horizon).to_json()
        if out_dir is not None:
            from . import plots
            with RunDir(out_dir, "--out", force) as rd:
                plots.compare_figure(rows, rd.tmp / "compare.png")
                rd.commit()
            err.print(f"wrote {out_dir / 'compare.png'}")
    if json_:
        docs = []
        for r in rows:
            d = dict(r["advice"])
            if "simulated" in r:
                d["simulated"] = r["simulated"]
                d["predicted_for_simulated_span"] = r["predicted_span"]
            docs.append(d)
        print(render.dumps(docs))
    else:
        render.compare_table(out, rows, simulate)


def _horizon_s(horizon: Optional[str]) -> Optional[float]:
    """--horizon in seconds (None if not given); bad syntax or range is bad input that names
    --horizon (not the `--set horizon=` it becomes)."""
    if horizon is None:
        return None
    from scenarios.schema import MAX_HORIZON_S
    from scenarios.units import format_duration, parse_duration_s
    try:
        h = parse_duration_s(horizon)
    except ValueError as e:
        raise BadInput(f"--horizon {horizon}: {e}") from None
    if not 0 < h <= MAX_HORIZON_S:
        raise BadInput(f"--horizon {horizon}: must be more than 0 and at most {format_duration(MAX_HORIZON_S)}")
    return h


def _horizon_set(horizon: Optional[str]) -> list[str]:
    return [] if _horizon_s(horizon) is None else [f"horizon={horizon}"]


@app.command()
@guarded
def simulate(scenario: str = typer.Argument(..., metavar="SCENARIO", help="Scenario YAML file or preset name."),
             set_: Optional[List[str]] = SetOpt,
             seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Random seed (default: the scenario's)."),
             horizon: Optional[str] = typer.Option(None, "--horizon", help="Simulate every request of a contiguous span from t = 0, e.g. 6h or 7d, instead of sampling the lifetime."),
             requests: Optional[float] = typer.Option(None, "--requests", min=1e3, max=1e10, metavar="N",
                                                      help="Requests to simulate when sampling the lifetime in slices (default 2e7)."),
             out_dir: Optional[Path] = typer.Option(None, "--out", help="Write metrics.json, timeseries.csv, latency_hist.csv, events.json here."),
             force: bool = ForceDirOpt,
             log: Optional[Path] = typer.Option(None, "--log", metavar="FILE", help="Write the request log (time, key) here and, next to it (FILE-labels.csv), the label log of the data batches the run ingested, as `mlarch fit` reads them."),
             log_sample: float = typer.Option(1.0, "--log-sample", min=1e-9, max=1.0, metavar="P", help="Log each request (and labelled example) with probability P."),
             allow_import: Optional[List[str]] = AllowImportOpt,
             threads: Optional[int] = typer.Option(None, "--threads", min=1, max=2, metavar="N",
                                                   help="1, or 2: draw the next requests' random numbers on a second thread while these are served (the same results, faster). Default: 2 with 2+ CPUs, unless MLARCH_THREADS=1."),
             json_: bool = JsonOpt, quiet: bool = QuietOpt):
    """Run the architecture (the scenario's `architecture:` block, else the advisor's choice) on
    synthetic traffic and report latency, cost, staleness and accuracy. The control plane covers
    the whole lifetime (`horizon`); requests are simulated in evenly spread time slices up to
    --requests (all of them when they fit), or over a contiguous --horizon span."""
    _progress_quiet(quiet)
    from . import render
    from advisor import design_for, predict
    from .progress import simulate_with_bar
    _horizon_s(horizon)
    if out_dir is not None:
        check_dir_output(out_dir, "--out", force)    # before any simulation
    # the design is planned on the scenario as written; --horizon only changes the span simulated
    planned = _load(scenario, set_)
    design = design_for(planned)
    sc = _load(scenario, (set_ or []) + _horizon_set(horizon))
    if sc.model.estimator is not None:
        from .calibrate import preflight
        preflight(scenario, set_, sc, design.training, _allow_imports(allow_import))
    budget = None if horizon is not None else (requests or DEFAULT_REQUESTS)
    if log is None:
        result = simulate_with_bar(sc, design, seed=seed, planning_horizon_s=planned.horizon, request_budget=budget,
                                   threads=threads)
    else:
        from simulator.traffic import integrated_rate
        expected = integrated_rate(0.0, sc.horizon, sc.traffic.rate, sc.traffic.diurnal_amplitude)
        if horizon is None and expected > (requests or DEFAULT_REQUESTS):
            raise BadInput(f"--log: the {sc.horizon / 86400:g}-day lifetime holds about {expected:.3g} requests, "
                           f"more than are simulated; a request log needs a contiguous span: add --horizon "
                           f"(e.g. --horizon 1d)")
        result = _simulate_logged(sc, design, seed, planned.horizon, log, log_sample, threads)
    if out_dir is not None:
        for pth in write_run(out_dir, result, force=force):
            err.print(f"wrote {pth}")
    if json_:
        print(render.dumps(result.metrics))
    else:
        render.simulation(out, result.metrics, predict(sc, design, planning_horizon_s=planned.horizon).to_json())


def _simulate_logged(sc, design, seed, planning_horizon_s, log: Path, sample: float, threads: int | None = None):
    """simulate, writing the request log and the label log (both complete or not at all)."""
    from . import simlog
    from .progress import simulate_with_bar
    check_file_output(log, "--log")
    labels = simlog.label_log_path(log)
    check_file_output(labels, "--log (its label log)")
    seed = sc.seed if seed is None else seed
    req = simlog.RequestLog(log, sample, seed)
    lab = None
    try:
        lab = simlog.LabelLog(labels, sc, sc.horizon, sample, seed)
        result = simulate_with_bar(sc, design, seed=seed, planning_horizon_s=planning_horizon_s,
                                   on_requests=req, on_batches=lab, request_budget=None, threads=threads)
        lab.finish()
        req.out.commit()
        lab.out.commit()
    except BaseException:
        req.out.abort()
        if lab is not None:
            lab.out.abort()
        raise
    err.print(f"wrote {log} ({req.out.rows:,} requests) and {labels} ({lab.out.rows:,} labelled examples, "
              f"{lab.from_batches:,} of them from the run's {lab.batches:,} data batches)"
              + (f", each kept with probability {sample:g}" if sample < 1 else "")
              + f"; next: mlarch fit {log} --labels {labels}"
              + (f" --log-sample {sample:g}" if sample < 1 else "") + " -o fitted.yaml")
    return result


@app.command()
@guarded
def selfcheck(quick: bool = typer.Option(False, "--quick", help="Shorter runs (wall times: benchmarks/bench_cli.py)."),
              seed: int = typer.Option(1, "--seed", min=0, help="Seed for every experiment."),
              random_n: int = typer.Option(0, "--random", min=0, max=10_000, metavar="N",
                                           help="Also compare advisor and simulator on N random scenarios (seeded by --seed)."),
              random_seeds: int = typer.Option(4, "--random-seeds", min=1, max=100,
                                               help="Simulation seeds per random scenario."),
              json_: bool = JsonOpt, quiet: bool = QuietOpt):
    """Run the simulator against closed-form theory (queueing, caching, staleness, drift,
    arrivals) and the advisor's predictions on every preset; exit 1 on any mismatch. With
    --random N, also the advisor-vs-simulator error distributions on N random scenarios
    (informational: they do not change the exit code)."""
    _progress_quiet(quiet)
    from . import render
    from . import selfcheck as sc_mod
    from .progress import Bar
    with Bar("selfcheck") as bar:
        checks = sc_mod.run(quick=quick, seed=seed, progress=lambda name, f: bar.update(f, stage=name))
    failed = [c for c in checks if not c.passed]
    agreement = None
    if random_n:
        from . import randomcheck
        with Bar("selfcheck --random") as bar:
            agreement = randomcheck.run(random_n, seeds=random_seeds, seed=seed,
                                        progress=lambda name, f: bar.update(f, stage=name))
    if json_:
        doc = {"checks": [c.to_json() for c in checks], "passed": not failed}
        if agreement is not None:
            doc["random"] = agreement
        print(render.dumps(doc))
    else:
        render.selfcheck_table(out, checks)
        if agreement is not None:
            render.random_table(out, agreement)
    if failed:
        raise typer.Exit(1)


@app.command()
@guarded
def sweep(scenario: str = typer.Argument(..., metavar="SCENARIO", help="Scenario YAML file or preset name."),
          vary: List[str] = typer.Option(..., "--vary", metavar="PATH=V1,V2,...",
                                         help="A field and the values to try (repeatable: the grid is their product)."),
          set_: Optional[List[str]] = SetOpt,
          seeds: int = typer.Option(1, "--seeds", min=1, max=1000, help="Seeds per grid point (scenario seed, +1, ...)."),
          jobs: int = typer.Option(0, "--jobs", min=0, help="Parallel local workers (0 = all cores, 1 = serial)."),
          scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="ADDRESS",
                                                  help="Run on a Dask cluster: tcp://host:8786, or local:N to start "
                                                       "one with N worker processes here (needs mlarch[dask])."),
          horizon: Optional[str] = typer.Option(None, "--horizon", help="Simulated span of every run (default: the scenario's); a run of more than 2e7 requests is sampled in slices, as simulate samples a lifetime."),
          out_csv: Path = typer.Option(..., "--out", help="CSV file to write: one row per (grid point, seed)."),
          fresh: bool = typer.Option(False, "--fresh", help="Run every point again, ignoring rows stored by earlier "
                                                            "runs of this sweep (in OUT.runs/)."),
          allow_import: Optional[List[str]] = AllowImportOpt,
          quiet: bool = QuietOpt):
    """Run a grid of simulations and write a tidy CSV (one column per varied field and per metric)."""
    _progress_quiet(quiet)
    _allow_imports(allow_import)
    from . import sweep as sw
    from .progress import Bar, is_quiet
    horizon_s = _horizon_s(horizon)
    check_file_output(out_csv, "--out")    # before any simulation
    _load(scenario, (set_ or []) + _horizon_set(horizon))
    if scheduler is not None:
        sw.local_workers(scheduler)   # a bad local:N fails before any work
    names, runs = sw.plan(scenario, set_ or [], vary, seeds)
    # finished rows are kept beside the CSV: a rerun (after Ctrl-C or a kill) skips them
    store = sw.RunStore.beside(out_csv)
    keys = [sw.run_key(scenario, tuple(set_ or []), r, horizon_s) for r in runs]
    stored = [False] * len(runs) if fresh else [store.get(k) is not None for k in keys]
    done = sum(stored)
    if scheduler is None:
        # local workers for the runs left, started before any thread (see sweep.start_workers)
        sw.start_workers(scenario, set_ or [], [r for r, s in zip(runs, stored) if not s], jobs, horizon_s)
    skipped = f"{done} already done in {store.dir}, skipped (--fresh to rerun)" if done else ""
    if not is_quiet():
        err.print(f"sweep: {len(runs)} runs ({len(runs) // seeds} grid points x {seeds} seeds)"
                  + (f"; {skipped}" if skipped else ""))
    elif skipped:   # not progress: it says why fewer runs ran
        err.print(f"sweep: {skipped}")
    with Bar("sweep", total=len(runs)) as bar:
        bar.update(done)
        rows = sw.run_grid(scenario, set_ or [], runs, jobs=jobs, scheduler=scheduler, horizon_s=horizon_s,
                           progress=lambda k: bar.update(k),
                           store=store, keys=keys, reuse=not fresh)
    atomic_write(out_csv, sw.csv_text(rows))
    err.print(f"wrote {out_csv} ({len(rows)} rows); next: mlarch plot {out_csv}")


@app.command()
@guarded
def capacity(scenario: str = typer.Argument(..., metavar="SCENARIO", help="Scenario YAML file or preset name."),
             set_: Optional[List[str]] = SetOpt,
             design: Optional[List[str]] = typer.Option(None, "--design", metavar="KIND",
                                                        help="static, dynamic or hybrid (repeatable; default: all three)."),
             simulate: bool = typer.Option(True, "--simulate/--no-simulate",
                                           help="Confirm each capacity by simulation (default) or trust the model."),
             horizon: str = typer.Option("30m", "--horizon", help="Simulated span of each confirmation run."),
             seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Simulation seed (default: the scenario's)."),
             out_dir: Optional[Path] = typer.Option(None, "--out", help="Write capacity.png and capacity.json here."),
             allow_import: Optional[List[str]] = AllowImportOpt,
             json_: bool = JsonOpt, quiet: bool = QuietOpt):
    """The highest traffic rate each design (static, dynamic, hybrid at the advisor's k) sustains
    within the latency SLO, confirmed by simulation, and the replicas needed at 2x and 10x."""
    _progress_quiet(quiet)
    from . import capacity as cap_mod
    from . import render
    _allow_imports(allow_import)
    kinds = tuple(dict.fromkeys(design or cap_mod.KINDS))
    bad = [k for k in kinds if k not in cap_mod.KINDS]
    if bad:
        raise BadInput(f"--design {bad[0]}: expected one of {', '.join(cap_mod.KINDS)}")
    horizon_s = _horizon_s(horizon)
    _load(scenario, (set_ or []) + _horizon_set(horizon))   # the span within the allowed range
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"--out {out_dir}: exists and is not a directory")
    from .progress import Bar
    with Bar("capacity") as bar:
        result = cap_mod.capacity(scenario, set_ or [], kinds, simulate=simulate, horizon_s=horizon_s, seed=seed,
                                  progress=lambda f, stage: bar.update(f, stage=stage))
    if out_dir is not None:
        from . import plots
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(out_dir / "capacity.json", render.dumps(result) + "\n")
        err.print(f"wrote {plots.capacity_figure(result, out_dir / 'capacity.png')}")
        err.print(f"wrote {out_dir / 'capacity.json'}")
    if json_:
        print(render.dumps(result))
    else:
        render.capacity_table(out, result)


@app.command()
@guarded
def plot(input_: Optional[Path] = typer.Argument(None, metavar="INPUT", help="A `simulate --out` directory or a sweep CSV."),
         out_dir: Optional[Path] = typer.Option(None, "--out", help="Directory for the PNGs (default: next to INPUT; "
                                                                    "with --map: the current directory)."),
         map_: Optional[str] = typer.Option(None, "--map", metavar="SCENARIO",
                                            help="Instead of INPUT: a map over cardinality and peakedness coloured "
                                                 "by the cheapest serving design that meets the SLO (advisor)."),
         set_: Optional[List[str]] = SetOpt,
         force: bool = ForceDirOpt, quiet: bool = QuietOpt):
    """Write PNG figures from a simulation run directory or a sweep CSV, or (--map) the serving
    map of a scenario."""
    _progress_quiet(quiet)
    from .files import RunDir
    if (input_ is None) == (map_ is None):
        raise BadInput("plot: give one of INPUT (a run directory or a sweep CSV) and --map SCENARIO")
    if map_ is not None:
        return _plot_map(map_, set_ or [], out_dir or Path("."))
    if set_:
        raise BadInput("--set applies to --map only (a run directory or CSV holds its own scenario)")
    if not input_.exists():
        raise BadInput(f"{input_}: no such file or directory")
    from . import plots
    notes: list[str] = []
    if input_.is_dir():
        missing = [f for f in ("metrics.json", "timeseries.csv", "latency_hist.csv") if not (input_ / f).exists()]
        if missing:
            raise BadInput(f"{input_}: not a `mlarch simulate --out` directory (missing {', '.join(missing)})")
        draw = lambda d: plots.run_figures(input_, d)   # noqa: E731
    else:
        draw = lambda d: plots.sweep_figures(input_, d, notes)   # noqa: E731
    try:
        if out_dir is None and input_.is_dir():
            # next to the run's own files: each PNG replaced atomically, the run's files kept
            paths = draw(input_)
        else:
            # a directory of figures, written whole; the default one (INPUT_plots) holds only
            # figures from an earlier plot, so it is replaced without --force
            target = out_dir or (input_.parent / (input_.stem + "_plots"))
            if force and input_.resolve().is_relative_to(target.resolve()):
                raise BadInput(f"--out {target}: contains INPUT {input_}; --force would delete it")
            only_pngs = None if out_dir is not None else (
                lambda d: all(p.is_file() and p.suffix == ".png" for p in d.iterdir()))
            with RunDir(target, "--out", force, only_pngs) as rd:
                paths = [target / p.name for p in draw(rd.tmp)]
                rd.commit()
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as e:
        if isinstance(e, (OutputError, ScenarioError)):
            raise
        raise BadInput(f"{input_}: cannot plot: {e}") from None
    except Exception as e:  # pandas parser errors and the like: bad input, not a crash
        if type(e).__module__.startswith("pandas"):
            raise BadInput(f"{input_}: not a CSV written by `mlarch sweep` (it does not parse as CSV)") from None
        raise
    for pth in paths:
        err.print(f"wrote {pth}")
    for note in notes:
        err.print(f"note: {one_line(note)}", markup=False)


def _plot_map(scenario: str, sets: list[str], out_dir: Path) -> None:
    from . import plots
    from .progress import Bar
    from .servingmap import serving_map
    if not out_dir.is_dir():
        raise BadInput(f"--out {out_dir}: not an existing directory")
    target = out_dir / "serving_map.png"
    check_file_output(target, "--out")
    sc = _load(scenario, sets)
    with Bar("serving map", total=1.0) as bar:
        m = serving_map(sc, progress=lambda k, n: bar.update(k / n))
    err.print(f"wrote {plots.serving_map_figure(m, target)}")


@app.command()
@guarded
def report(scenario: str = typer.Argument(..., metavar="SCENARIO", help="Scenario YAML file or preset name."),
           set_: Optional[List[str]] = SetOpt,
           output: Path = typer.Option(..., "-o", "--output", help="HTML file to write."),
           jobs: int = typer.Option(0, "--jobs", min=0, help="Parallel workers for the trade-off sweeps (0 = all cores)."),
           allow_import: Optional[List[str]] = AllowImportOpt,
           quiet: bool = QuietOpt):
    """Write one self-contained HTML page: the advice and its reasons, the simulated figures,
    and trade-off plots from a small sweep around the recommendation."""
    _progress_quiet(quiet)
    from . import report as rep
    _allow_imports(allow_import)
    check_file_output(output, "-o")    # before any simulation
    _load(scenario, set_)   # bad input fails before any simulation
    from .progress import Bar
    with Bar("report") as bar:
        page = rep.build(scenario, set_ or [], progress=lambda msg, f=None: bar.update(f, stage=msg), jobs=jobs)
    atomic_write(output, page)
    err.print(f"wrote {output} ({len(page) / 1e6:.1f} MB, self-contained)")


@app.command()
@guarded
def fit(logs: List[Path] = typer.Argument(..., metavar="LOG", help="Request logs: CSV (.csv, .csv.gz) or Parquet, each sorted by time."),
        labels: Optional[Path] = typer.Option(None, "--labels", metavar="LABELLOG", help="Label log: example time and label time per row (empty label time: not labelled yet)."),
        from_: str = typer.Option("spam", "--from", metavar="PRESET|SCENARIO", help="Where the fields a log cannot tell come from."),
        output: Path = typer.Option(..., "-o", "--output", help="Scenario YAML file to write (and its fit record FILE.fit.json beside it, which `report` draws from)."),
        time_col: str = typer.Option("time", "--time-col", help="Time column (ISO-8601 or epoch s/ms/us/ns, auto-detected)."),
        key_col: str = typer.Option("key", "--key-col", help="Key column: the request's input identity."),
        label_time_col: str = typer.Option("label_time", "--label-time-col", help="Label log: label time column."),
        label_example_col: Optional[str] = typer.Option(None, "--label-example-col", help="Label log: example time column (default: --time-col)."),
        log_sample: float = typer.Option(1.0, "--log-sample", min=1e-9, max=1.0, metavar="P", help="The logs hold a uniform P-sample of requests and labelled examples (simulate --log-sample P): rate and velocity are divided by P."),
        figures: Optional[Path] = typer.Option(None, "--figures", metavar="DIR", help="Write PNG figures of the fits here."),
        json_: bool = JsonOpt, quiet: bool = QuietOpt):
    """Fit a scenario to a real request log (and label log): rate, daily swing, cardinality,
    Zipf exponent, label velocity and delay, each with a 95% interval and its method."""
    _progress_quiet(quiet)
    from . import fit as fitmod
    from . import render
    from .progress import is_quiet
    check_file_output(output, "-o")
    record = fitmod.record_path(output)
    check_file_output(record, "-o (its fit record)")     # both before reading any log
    if figures is not None and figures.exists() and not figures.is_dir():
        raise BadInput(f"--figures {figures}: exists and is not a directory")
    import re
    name = output.name.split(".")[0].lower().replace("_", "-")
    name = name if re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", name) else "fitted"
    try:
        res = fitmod.fit(list(logs), time_col=time_col, key_col=key_col, labels=labels,
                         label_time_col=label_time_col, label_example_col=label_example_col,
                         base=from_, name=name, sample=log_sample,
                         progress=not is_quiet())   # on stderr only, so --json stays clean
    except fitmod.LogError as e:
        raise BadInput(str(e)) from None
    res.doc["scenario_file"] = str(output)
    res.doc["fit_record"] = str(record)
    rec = fitmod.fit_record(res)
    atomic_write(output, res.scenario_text)
    # the record beside the scenario: `mlarch report` draws the fit's figures from it
    atomic_write(record, render.dumps(rec) + "\n")
    if figures is not None:
        from . import fitplots
        figures.mkdir(parents=True, exist_ok=True)
        res.doc["figures"] = [str(p) for p in fitplots.figures(rec, figures)]
    if json_:
        print(render.dumps(res.doc))
    else:
        render.fit_summary(out, res.doc)
    for w in res.doc["warnings"]:
        err.print(f"warning: {one_line(w)}", markup=False)
    for p in res.doc.get("figures", []):
        err.print(f"wrote {p}")
    err.print(f"wrote {output} and its fit record {record}; next: mlarch advise {output} "
              f"(or mlarch report {output} -o report.html, with the fit's figures)")


@app.command()
@guarded
def calibrate(scenario: str = typer.Argument(..., metavar="SCENARIO", help="Scenario YAML file or preset name (its feature width is used)."),
              estimator: Optional[str] = typer.Option(None, "--estimator", metavar="CLASS",
                                                      help="Estimator class, e.g. sklearn.linear_model.SGDClassifier."),
              model: Optional[Path] = typer.Option(None, "--model", metavar="FILE.joblib",
                                                   help="A fitted estimator saved with joblib (unpickling runs code from the file)."),
              rows: int = typer.Option(20_000, "--rows", min=200, max=2_000_000, metavar="N",
                                       help="Synthetic training rows (the largest fit measured)."),
              reps: int = typer.Option(2_000, "--reps", min=100, max=1_000_000, metavar="N",
                                       help="Single-row predict repetitions."),
              speedup: float = typer.Option(1.0, "--speedup", min=1e-3, max=1e3, metavar="X",
                                            help="The target hardware is X times faster per core: every time is divided by X."),
              set_: Optional[List[str]] = SetOpt,
              allow_import: Optional[List[str]] = AllowImportOpt,
              output: Optional[Path] = typer.Option(None, "-o", "--output", help="Scenario YAML file to write (default: print the model block)."),
              json_: bool = JsonOpt, quiet: bool = QuietOpt):
    """Measure a real estimator on this machine (predict latency per row and per batch, fit and
    partial_fit time) and write the figures, per CPU core, into the scenario's model block."""
    _progress_quiet(quiet)
    import re

    from . import calibrate as cal
    from . import render
    if output is not None:
        check_file_output(output, "-o")    # before any measuring
    allow = _allow_imports(allow_import)
    if estimator is not None and model is not None:
        raise BadInput("give --estimator CLASS or --model FILE, not both")
    if model is not None and not model.is_file():
        raise BadInput(f"--model {model}: no such file")
    if model is not None:
        err.print(f"mlarch: loading {model} with joblib: unpickling runs code stored in the file; "
                  "load only files you trust", markup=False)
    name = None
    if output is not None:
        stem = output.name.split(".")[0].lower().replace("_", "-")
        name = stem if re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", stem) else None
    from .progress import Bar
    with Bar("calibrate", delay_s=0.0) as bar:   # every stage is a measurement worth naming
        doc, text, block = cal.calibrate(scenario, set_ or [], estimator=estimator, model_file=model, rows=rows, reps=reps,
                                         speedup=speedup, allow=allow, name=name,
                                         progress=lambda what: bar.update(stage=f"timing {what}"))
    if output is not None:
        atomic_write(output, text)
        doc["scenario_file"] = str(output)
    if json_:
        print(render.dumps(doc))
    elif output is None:
        sys.stdout.write(block)     # YAML: never wrapped
    else:
        out.print(f"{doc['estimator']['class']} on {doc['machine']['cpu']} (per core):", markup=False)
        ps = doc["predict_single"]
        out.print(f"  predict, one row: median {ps['median_s'] * 1e6:.1f} us, p99 {ps['p99_s'] * 1e6:.1f} us "
                  f"(lognormal MLE; {ps['note']})", markup=False)
        bp = doc["batch_predict"]
        out.print(f"  predict, batch of b rows: {bp['fixed_s'] * 1e6:.1f} us + {bp['per_key_s'] * 1e6:.3f} us x b",
                  markup=False)
        ft = doc["fit"]
        out.print(f"  fit: {ft['fixed_s'] * 1e3:.2f} ms + {ft['per_million_examples_s']:.2f} s per million examples",
                  markup=False)
        if doc["partial_fit"]:
            pf = doc["partial_fit"]
            out.print(f"  partial_fit: {pf['per_batch_s'] * 1e3:.2f} ms per batch of {pf['batch_examples']:,.0f} examples",
                      markup=False)
        if doc["speedup"] != 1:
            out.print(f"  written divided by --speedup {doc['speedup']:g}", markup=False)
    if output is not None:
        extra = "".join(f" --allow-import {m}" for m in allow)
        err.print(f"wrote {output}; next: mlarch advise {output} && mlarch simulate {output}{extra} --horizon 1h")


def main():
    """Console-script entry point."""
    _one_blas_thread()
    try:
        code = app(prog_name="mlarch", standalone_mode=False)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        # Usage errors (unknown option, missing argument): click would print usage, a blank
        # line and the error; one line is easier to read and to parse. Matched by duck type
        # because typer >= 0.16 vendors click under another module name.
        if type(e).__name__ == "Abort":
            sys.exit(130)
        if not hasattr(e, "format_message") or not hasattr(e, "exit_code"):
            raise
        if type(e).__name__ == "NoArgsIsHelpError":   # bare `mlarch`: the help, as click prints it
            err.print(e.format_message(), markup=False, emoji=False, soft_wrap=True)
            sys.exit(e.exit_code)
        ctx = getattr(e, "ctx", None)
        cmd = ctx.command_path if ctx is not None else "mlarch"
        hint = f" (try '{cmd} --help')" if hasattr(e, "ctx") else ""
        err.print(f"{cmd}: error: {one_line(e.format_message())}{hint}", markup=False, emoji=False)
        sys.exit(e.exit_code)
    _exit_without_collecting()
    sys.exit(code if isinstance(code, int) else 0)


def _exit_without_collecting() -> None:
    """The process is about to exit: move every object out of the garbage collector's reach
    (gc.freeze), so that the interpreter's last collections do not walk numba's large object
    graphs (about 0.25 s after a simulation, 0.03 s this way). Objects are still released at
    exit, and standard streams flushed, as before."""
    import gc
    gc.freeze()


def _one_blas_thread() -> None:
    """Hold BLAS to one thread in this process and the workers it starts, before numpy loads
    it: mlarch's matrix products are small, so a second OpenBLAS thread would only spin after
    each (about 0.1 s of CPU a time) on the core a sweep's other run or a simulation's drawing
    thread uses. A setting already in the environment wins."""
    import os
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ.setdefault(var, "1")


if __name__ == "__main__":
    main()
