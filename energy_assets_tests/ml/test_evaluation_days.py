"""Which days ml/forecast_eval scores and reads as context (a rule moved out of the asset)."""

from datetime import date, timedelta

import pytest

from energy_assets.ml.forecaster import evaluation_days


def days(first: str, n: int) -> list[str]:
    start = date.fromisoformat(first)
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


def test_a_closed_test_period_with_a_week_of_stored_context():
    stored = set(days("2024-03-01", 20))
    got, n_context = evaluation_days(
        "2024-03-12T00:00:00+00:00", "2024-03-14T00:00:00+00:00", 96, stored.__contains__
    )
    # seasonal naive needs a week back even when the model's context is 4 days
    assert n_context == 7
    assert got == [*days("2024-03-05", 7), "2024-03-12", "2024-03-13"]


def test_context_stops_at_the_first_missing_day_and_grows_with_the_model_context():
    stored = set(days("2024-02-01", 40)) - {"2024-03-08"}
    got, n_context = evaluation_days(
        "2024-03-12T00:00:00+00:00", "2024-03-13T00:00:00+00:00", 240, stored.__contains__
    )
    assert (n_context, got) == (3, ["2024-03-09", "2024-03-10", "2024-03-11", "2024-03-12"])
    stored.add("2024-03-08")
    _, n_context = evaluation_days(
        "2024-03-12T00:00:00+00:00", "2024-03-13T00:00:00+00:00", 240, stored.__contains__
    )
    assert n_context == 10  # ceil(240 / 24)


def test_a_partial_last_day_counts_and_an_open_period_ends_at_the_last_stored_day():
    stored = set(days("2024-03-10", 5))
    got, _ = evaluation_days(
        "2024-03-12T00:00:00+00:00", "2024-03-13T06:00:00+00:00", 24, stored.__contains__
    )
    assert got[-2:] == ["2024-03-12", "2024-03-13"]
    got, n_context = evaluation_days("2024-03-12T00:00:00+00:00", None, 24, stored.__contains__,
                                     sorted(stored))  # fmt: skip
    assert got == days("2024-03-10", 5) and n_context == 2


def test_an_open_period_with_nothing_stored_says_what_to_do():
    with pytest.raises(FileNotFoundError, match="materialize it first"):
        evaluation_days("2024-03-12T00:00:00+00:00", None, 24, lambda d: False, [])
