"""Hypothesis matrices from cross-products: types I, II, III and reparametrization."""
import numpy as np
import pytest

from vcomp.hypotheses import hypothesis_matrices, pinv_psd, reparametrize, row_basis


def _codes(rng, n=40):
    a = rng.integers(0, 3, n)
    b = rng.integers(0, 2, n)
    a[:6] = [0, 1, 2, 0, 1, 2]
    b[:6] = [0, 0, 0, 1, 1, 1]
    return a, b


def _sum(codes, k):
    c = np.vstack([np.eye(k - 1), -np.ones(k - 1)])
    return c[codes]


def _trt(codes, k):
    return np.eye(k)[codes][:, 1:]


def _model(a, b, coder):
    xa, xb = coder(a, 3), coder(b, 2)
    xab = (xa[:, :, None] * xb[:, None, :]).reshape(len(a), -1)
    X = np.column_stack([np.ones(len(a)), xa, xb, xab])
    assign = [-1, 0, 0, 1, 2, 2]
    return X, assign


def _ss(X, y, L):
    G, _ = pinv_psd(X.T @ X)
    b = G @ X.T @ y
    lb = L @ b
    return float(lb @ np.linalg.solve(L @ G @ L.T, lb))


def _proj_ss(X, y):
    b, *_ = np.linalg.lstsq(X, y, rcond=None)
    f = X @ b
    return float(f @ f)


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    a, b = _codes(rng)
    y = rng.normal(size=len(a)) + a * 0.7 + b
    return a, b, y


def test_type1_matches_sequential_projections(data):
    a, b, y = data
    X, assign = _model(a, b, _sum)
    L = hypothesis_matrices(X.T @ X, assign, ["a", "b", "a:b"], 1)
    assert [L[t].shape[0] for t in ("a", "b", "a:b")] == [2, 1, 2]
    assign = np.array(assign)
    for k, t in enumerate(["a", "b", "a:b"]):
        expect = _proj_ss(X[:, assign <= k], y) - _proj_ss(X[:, assign < k], y)
        assert _ss(X, y, L[t]) == pytest.approx(expect, rel=1e-9)


def test_type2_adjusts_for_noncontaining_terms(data):
    a, b, y = data
    X, assign = _model(a, b, _sum)
    assign = np.array(assign)
    L = hypothesis_matrices(X.T @ X, assign, ["a", "b", "a:b"], 2)
    # SS(a | b) and SS(b | a)
    ss_a = _proj_ss(X[:, assign <= 1], y) - _proj_ss(X[:, np.isin(assign, [-1, 1])], y)
    ss_b = _proj_ss(X[:, assign <= 1], y) - _proj_ss(X[:, np.isin(assign, [-1, 0])], y)
    assert _ss(X, y, L["a"]) == pytest.approx(ss_a, rel=1e-9)
    assert _ss(X, y, L["b"]) == pytest.approx(ss_b, rel=1e-9)


def test_type3_sum_coding_is_wald_test_of_term_columns(data):
    a, b, y = data
    X, assign = _model(a, b, _sum)
    L = hypothesis_matrices(X.T @ X, assign, ["a", "b", "a:b"], 3)
    E = np.eye(X.shape[1])[[1, 2]]
    assert _ss(X, y, L["a"]) == pytest.approx(_ss(X, y, E), rel=1e-9)
    # the row space is the term's own coordinates
    assert np.allclose(L["a"][:, 3:], 0, atol=1e-10)


def test_reparametrize_type3_to_treatment_coding(data):
    a, b, y = data
    Xs, assign = _model(a, b, _sum)
    Xt, _ = _model(a, b, _trt)
    L = hypothesis_matrices(Xs.T @ Xs, assign, ["a", "b", "a:b"], 3)
    for t in ("a", "b", "a:b"):
        Lt = reparametrize(L[t], Xs.T @ Xs, Xs.T @ Xt)
        assert _ss(Xt, y, Lt) == pytest.approx(_ss(Xs, y, L[t]), rel=1e-9)
    # treatment coding type 3 of "a" computed directly is a different (wrong) hypothesis
    Lt_naive = hypothesis_matrices(Xt.T @ Xt, assign, ["a", "b", "a:b"], 3)["a"]
    assert abs(_ss(Xt, y, Lt_naive) - _ss(Xs, y, L["a"])) > 1e-6


def test_aliased_term_has_zero_rows():
    rng = np.random.default_rng(0)
    a = np.repeat([0, 1, 2], 4)
    X = np.column_stack([np.ones(12), _sum(a, 3), _sum(a, 3)])  # term 1 duplicates term 0
    L = hypothesis_matrices(X.T @ X, [-1, 0, 0, 1, 1], ["a", "a2"], 1)
    assert L["a"].shape == (2, 5)
    assert L["a2"].shape == (0, 5)
    del rng


def test_scale_invariance_with_covariate(data):
    a, b, y = data
    x = np.linspace(0, 1, len(a))
    for scale in (1.0, 1e5):
        X = np.column_stack([np.ones(len(a)), _sum(a, 3), x * scale])
        L = hypothesis_matrices(X.T @ X, [-1, 0, 0, 1], ["a", "x"], 3)
        assert L["x"].shape[0] == 1 and L["a"].shape[0] == 2


def test_row_basis_and_bad_type():
    assert row_basis(np.array([[1.0, 0], [2.0, 0]])).shape == (1, 2)
    with pytest.raises(ValueError):
        hypothesis_matrices(np.eye(2), [-1, 0], ["a"], 4)


def test_means_matrix_averages_grid_rows():
    from vcomp.hypotheses import means_matrix
    rows = np.array([[1.0, 0.0], [1.0, 2.0], [1.0, 4.0]])
    L = means_matrix(rows, np.array([0, 0, 1]), 2)
    assert np.allclose(L, [[1.0, 1.0], [1.0, 4.0]])


def test_pairs_matrix_within_slices():
    from vcomp.hypotheses import pairs_matrix
    first, second, D = pairs_matrix(np.array([0, 0, 0, 1, 1]))
    assert list(zip(first, second)) == [(0, 1), (0, 2), (1, 2), (3, 4)]
    assert np.allclose(D.sum(axis=1), 0) and D.shape == (4, 5)
