import math

import pytest

from scenarios import units


@pytest.mark.parametrize("text,seconds", [("250ms", 0.25), ("30s", 30), ("15m", 900), ("6h", 21600),
                                          ("7d", 604800), (12, 12), ("1.5h", 5400), ("2w", 1209600)])
def test_durations(text, seconds):
    assert units.parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text,per_s", [("50/s", 50), ("3000/min", 50), ("1e6/h", 1e6 / 3600),
                                        ("2e7/d", 2e7 / 86400), (7, 7), ("8.5", 8.5)])
def test_rates(text, per_s):
    assert units.parse_rate_per_s(text) == pytest.approx(per_s)


@pytest.mark.parametrize("text,b", [(64, 64), ("1.5KB", 1500), ("2GB", 2e9), ("1KiB", 1024)])
def test_sizes(text, b):
    assert units.parse_size_bytes(text) == b


def test_fractions_and_counts():
    assert units.parse_fraction("40%") == pytest.approx(0.4)
    assert units.parse_fraction(0.4) == 0.4
    assert units.parse_count("1e9") == 10**9
    assert units.parse_count(1e9) == 10**9


@pytest.mark.parametrize("fn,bad", [(units.parse_duration_s, "-5s"), (units.parse_duration_s, "5 parsecs"),
                                    (units.parse_rate_per_s, "-1/s"), (units.parse_rate_per_s, "5/fortnight"),
                                    (units.parse_fraction, "120%"), (units.parse_fraction, 1.5),
                                    (units.parse_count, 1.5), (units.parse_count, "many"),
                                    (units.parse_duration_s, math.nan), (units.parse_rate_per_s, math.inf),
                                    (units.parse_duration_s, True), (units.parse_size_bytes, "3 apples")])
def test_bad_values_raise(fn, bad):
    with pytest.raises(ValueError):
        fn(bad)
