"""The decision settings' choice of threshold (``pipeline/learning/tuning.py``)."""

from __future__ import annotations

from pipeline.learning import tuning

GRID = tuning._THRESHOLDS


def test_a_clear_peak_is_taken() -> None:
    scores = [0.5] * len(GRID)
    scores[GRID.index(0.35)] = 0.8
    assert GRID[tuning.plateau_middle(scores)] == 0.35


def test_a_flat_curve_gives_its_middle_not_the_edge_that_won_by_a_hair() -> None:
    # 0.60 … 0.85 all within PLATEAU of the best, which is the grid's top (as ownership was in 2.e388b6f9)
    scores = [0.7 if t < 0.6 else 0.80 + (0.004 if t == 0.85 else 0.0) for t in GRID]
    assert GRID[tuning.plateau_middle(scores)] == 0.7


def test_the_plateau_is_the_run_around_the_best_only() -> None:
    # a second near-best stretch, cut off from the best by a dip, does not widen the plateau
    scores = [0.80, 0.80, 0.80, 0.80, 0.60, 0.60, 0.60, 0.81, 0.81, 0.60, 0.60, 0.60, 0.60, 0.60]
    assert GRID[tuning.plateau_middle(scores)] == GRID[7]


def test_ties_at_the_best_start_from_the_one_nearest_one_half() -> None:
    scores = [0.9] + [0.5] * (len(GRID) - 2) + [0.9]
    assert tuning.plateau_middle(scores) == 0  # 0.20 is nearer 0.5 than 0.85
    scores = [0.5] * len(GRID)
    for t in (0.25, 0.5):
        scores[GRID.index(t)] = 0.9
    assert GRID[tuning.plateau_middle(scores)] == 0.5


def test_an_even_run_gives_the_lower_middle_point() -> None:
    scores = [0.5] * len(GRID)
    for t in (0.4, 0.45, 0.5, 0.55):
        scores[GRID.index(t)] = 0.9
    assert GRID[tuning.plateau_middle(scores)] == 0.45


def test_best_threshold_reads_the_score_at_each_grid_point() -> None:
    assert tuning._best_threshold(lambda th: 1.0 - abs(th - 0.4)) == 0.4
    # a slope too gentle to leave the plateau: the old rule took the top (0.85), this one the middle
    assert tuning._best_threshold(lambda th: 0.8 + 0.01 * th) == GRID[(len(GRID) - 1) // 2]


def test_ownership_takes_the_best_policy_then_its_plateau() -> None:
    flat = [0.80] * len(GRID)
    higher = [0.70] * 6 + [0.82] * 8  # 0.50 … 0.85 near-best
    curves = {"agree": flat, "model": higher, "either": flat}
    assert tuning.ownership_choice(curves) == ("model", GRID[(6 + 13) // 2])
    # a tie between policies goes to the one listed first (the policy shipped before)
    assert tuning.ownership_choice({h: flat for h in tuning.OWNERSHIP_POLICIES})[0] == tuning.OWNERSHIP_POLICIES[0]
