"""vcomp.refgrid: reference grids as emmeans builds them."""
import numpy as np

from vcomp.refgrid import nesting_clusters, reference_grid, term_means


def test_crossed_factors_give_the_full_product_and_covariates_their_mean():
    codes = {"a": np.array([0, 0, 1, 1, 2]), "b": np.array([0, 1, 0, 1, 0])}
    grid = reference_grid(codes, {"a": 3, "b": 2}, {"x": np.array([1.0, 2.0, 3.0, 4.0, 10.0])})
    assert len(grid) == 6 and list(grid.columns) == ["a", "b", "x"]
    assert np.allclose(grid["x"], 4.0)
    assert list(zip(grid["a"], grid["b"]))[:3] == [(0, 0), (0, 1), (1, 0)]  # first factor slowest


def test_two_valued_covariate_keeps_both_values():
    codes = {"a": np.array([0, 1, 0, 1])}
    grid = reference_grid(codes, {"a": 2}, {"z": np.array([0.0, 1.0, 1.0, 1.0])})
    assert len(grid) == 4 and sorted(set(grid["z"])) == [0.0, 1.0]


def test_nested_factors_keep_their_observed_combinations():
    # block b0, b1 in rep 0; b2, b3 in rep 1 (labels unique across reps); gen crossed with both
    rep = np.repeat([0, 1], 6)
    block = np.repeat([0, 1, 2, 3], 3)
    gen = np.tile([0, 1, 2], 4)
    codes = {"rep": rep, "block": block, "gen": gen}
    assert sorted(map(sorted, nesting_clusters(codes))) == [["block", "rep"], ["gen"]]
    grid = reference_grid(codes, {"rep": 2, "block": 4, "gen": 3})
    assert len(grid) == 4 * 3
    combos, L = term_means(grid, np.eye(len(grid)), ["rep"])
    assert list(combos["rep"]) == [0, 1]
    # equal weights over the two blocks of each rep and the three genotypes
    assert np.allclose(L.sum(axis=1), 1.0) and np.allclose(L[L > 0], 1 / 6)
