"""sweep, plot, compare --simulate and report."""
import json
import re

import pandas as pd
import pytest

from mlarch import sweep as sw

PNG = b"\x89PNG\r\n\x1a\n"
FAST = ["--set", "traffic.rate=30/s", "--set", "horizon=2h", "--set", "model.training_window=6h"]


def test_sweep_csv_rows_and_columns(cli, tmp_path):
    out = tmp_path / "s.csv"
    res = cli("sweep", "spam", *FAST, "--vary", "traffic.rate=20/s,40/s", "--vary", "slo.latency_p99=100ms,200ms",
              "--seeds", "2", "--jobs", "1", "--out", out)
    assert res.exit_code == 0, res.stderr
    df = pd.read_csv(out)
    assert len(df) == 2 * 2 * 2
    assert list(df.columns[:3]) == ["traffic.rate", "slo.latency_p99", "seed"]
    for col in ("latency_ms_p99", "cost_usd_per_month", "cache_hit_ratio", "accuracy_lost_to_staleness",
                "staleness_model_age_s_mean", "architecture_serving", "predicted_latency_p99_ms"):
        assert col in df.columns
    assert "wall_s" not in df.columns
    assert sorted(df["seed"].unique()) == [7, 8]


def test_parallel_equals_serial():
    names, runs = sw.plan("spam", FAST[1::2], ["architecture.cache_top_k=0,100", "traffic.rate=20/s,30/s"], 2)
    serial = sw.run_grid("spam", FAST[1::2], runs, jobs=1, horizon_s=1800.0)
    parallel = sw.run_grid("spam", FAST[1::2], runs, jobs=2, horizon_s=1800.0)
    assert pd.DataFrame(serial).equals(pd.DataFrame(parallel))
    assert len(serial) == 8


def test_cache_keyword_values_span_dynamic_to_static():
    assert sw.point_overrides((("architecture.cache_top_k", "0"),)) == ["architecture.serving=dynamic"]
    assert sw.point_overrides((("architecture.cache_top_k", "all"),)) == ["architecture.serving=static"]
    assert sw.point_overrides((("architecture.cache_top_k", "1e3"),)) == ["architecture.serving=hybrid",
                                                                           "architecture.cache_top_k=1e3"]


def test_flow_values_split_on_top_level_commas():
    path, vals = sw.parse_vary("architecture={serving: hybrid, cache_top_k: 10},{serving: dynamic}")
    assert path == "architecture" and vals == ["{serving: hybrid, cache_top_k: 10}", "{serving: dynamic}"]


@pytest.mark.parametrize("vary,expect", [("traffic.rate", "PATH=V1,V2"), ("traffic.rate=10/s,-5/s", "traffic.rate"),
                                         ("traffic.rte=10/s", "did you mean 'rate'")])
def test_sweep_bad_vary_exit_2_and_no_file(cli, tmp_path, vary, expect):
    out = tmp_path / "s.csv"
    res = cli("sweep", "spam", "--vary", vary, "--out", out)
    assert res.exit_code == 2 and expect in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_sweep_dask_missing_or_unreachable_is_a_clear_error(cli, tmp_path):
    res = cli("sweep", "spam", *FAST, "--vary", "traffic.rate=20/s", "--scheduler", "tcp://127.0.0.1:1",
              "--out", tmp_path / "s.csv")
    assert res.exit_code == 2
    assert "mlarch[dask]" in res.stderr or "cannot reach" in res.stderr
    assert not (tmp_path / "s.csv").exists()


def _is_png(path):
    return path.read_bytes()[:8] == PNG and path.stat().st_size > 5000


def test_plot_run_dir_and_sweep_csv(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("simulate", "spam", *FAST, "--horizon", "1h", "--out", run).exit_code == 0
    res = cli("plot", run)
    assert res.exit_code == 0, res.stderr
    for name in ("latency_cdf.png", "accuracy_age.png", "cost_breakdown.png"):
        assert _is_png(run / name)
    csv = tmp_path / "s.csv"
    assert cli("sweep", "voice-to-text", "--set", "traffic.cardinality=1e6", "--set", "traffic.rate=50/s",
               "--vary", "architecture.cache_top_k=0,1e3,1e5,all", "--horizon", "20m", "--seeds", "2",
               "--jobs", "1", "--out", csv).exit_code == 0
    figs = tmp_path / "figs"
    res = cli("plot", csv, "--out", figs)
    assert res.exit_code == 0, res.stderr
    assert _is_png(figs / "tradeoff_storage_latency.png")
    assert _is_png(figs / "metrics_vs_architecture_cache_top_k.png")
    df = pd.read_csv(csv)
    assert set(df["architecture_serving"]) == {"dynamic", "hybrid", "static"}


def test_plot_bad_inputs(cli, tmp_path):
    assert cli("plot", tmp_path / "nope").exit_code == 2
    (tmp_path / "d").mkdir()
    res = cli("plot", tmp_path / "d")
    assert res.exit_code == 2 and "metrics.json" in res.stderr
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    res = cli("plot", bad)
    assert res.exit_code == 2 and "sweep CSV" in res.stderr


def test_compare_simulate_json_and_figure(cli, tmp_path):
    res = cli("compare", "spam", "ad-conversion", "--simulate", "--horizon", "30m", "--set", "traffic.rate=20/s",
              "--out", tmp_path, "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [d["scenario"] for d in doc] == ["spam", "ad-conversion"]
    assert all("simulated" in d and "latency_ms" in d["simulated"] for d in doc)
    assert _is_png(tmp_path / "compare.png")


def test_report_is_self_contained(cli, tmp_path):
    out = tmp_path / "r.html"
    res = cli("report", "spam", "--set", "traffic.rate=20/s", "--set", "horizon=6h", "--jobs", "1", "-o", out)
    assert res.exit_code == 0, res.stderr
    page = out.read_text()
    imgs = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    alts = re.findall(r'<img alt="([^"]*)"', page)
    assert len(imgs) == len(alts) == 5, alts   # latency, accuracy, cost, a trade-off, the serving map
    assert any("cheapest serving design" in a for a in alts)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "http://" not in page and "https://" not in page
    assert "Training" in page and "Serving" in page and "Predicted and simulated" in page
    assert 'id="fit"' not in page      # a preset carries no fit (tests/test_fit.py: a fitted scenario does)


@pytest.mark.parametrize("args", [("spam", "voice-to-text", "ad-conversion"),
                                  ("spam", "ad-conversion", "--simulate", "--horizon", "10m",
                                   "--set", "traffic.rate=20/s")])
def test_compare_table_fits_100_columns(cli, monkeypatch, args):
    """The table's natural width (drawn on a console far wider than needed, so nothing is
    squeezed) fits a 100-column terminal: one column per scenario, not one per figure."""
    import io

    from rich.console import Console

    from mlarch import cli as cli_mod
    wide = Console(width=400, record=True, file=io.StringIO(), highlight=False)
    monkeypatch.setattr(cli_mod, "out", wide)
    res = cli("compare", *args, "--quiet")
    assert res.exit_code == 0, res.output
    lines = wide.export_text().splitlines()
    assert len(lines) > 10 and max(len(ln.rstrip()) for ln in lines) <= 100, max(lines, key=len)
