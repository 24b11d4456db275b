"""vcomp.multiplicity against R (values from R 4.2: ptukey, qtukey, p.adjust, qt, qf, zapsmall)."""
import math

import numpy as np
import pytest
from scipy import stats

from vcomp import VcompError
from vcomp.multiplicity import _qtukey, _qtukey_interpolant, adjust_p, check_adjust, critical_values, zapsmall

T = np.array([-2.5, 0.3, 1.9, 3.7])
DF = np.array([12.3456789, 12.3456789, 30.5, 30.5])
R_P = {
    "none": [0.027430382193696645, 0.769168587339240539, 0.066923769539947414, 0.000849236545572375],
    "tukey": [0.10907231737314527, 0.99014555984856645, 0.24916984268288778, 0.00447483943965754],
    "holm": [0.0822911465810899, 0.7691685873392405, 0.1338475390798948, 0.0033969461822895],
    "bonferroni": [0.1097215287747866, 1.0, 0.2676950781597897, 0.0033969461822895],
    "sidak": [0.10528896474279614, 0.99716090687761194, 0.24200122330290075, 0.00339262141539398],
    "scheffe": [0.15449265544835816, 0.99264246933819611, 0.32513189072343596, 0.00936948142166272],
}
R_CV = {"tukey": [2.95653670879152, 2.71654771430160], "sidak": [2.91023568185015, 2.64659958467796],
        "bonferroni": [2.92041292375952, 2.65458681817397], "holm": [2.92041292375952, 2.65458681817397],
        "scheffe": [3.22226981399059, 2.95806172612019]}


@pytest.mark.parametrize("method", sorted(R_P))
def test_adjusted_p_values_match_r(method):
    # a family of 4 means (Tukey) with 4 comparisons, contrasts of rank 3 (Scheffe)
    got = adjust_p(T, DF, method, nmeans=4, rank=3)
    np.testing.assert_allclose(got, R_P[method], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", sorted(R_CV))
def test_critical_values_match_r(method):
    got = critical_values(0.95, DF, method, nmeans=4, rank=3)
    np.testing.assert_allclose(got[[0, 2]], R_CV[method], rtol=1e-6)


def test_single_comparison_is_unadjusted_except_scheffe():
    p = adjust_p(np.array([2.0]), np.array([10.0]), "tukey", nmeans=2, rank=1)
    assert p[0] == pytest.approx(2 * stats.t.sf(2.0, 10))
    cv = critical_values(0.95, np.array([10.0]), "bonferroni", nmeans=2, rank=1)
    assert cv[0] == pytest.approx(stats.t.isf(0.025, 10))


def test_holm_ignores_missing_p_values():
    p = adjust_p(np.array([3.0, np.nan, 1.0]), np.array([10.0, 10.0, 10.0]), "holm", nmeans=3, rank=2)
    assert np.isnan(p[1]) and p[0] <= p[2] <= 1.0


def test_zapsmall_as_r():
    np.testing.assert_array_equal(zapsmall(np.array([12.3456789123, 3.1, np.inf])), [12, 3, np.inf])
    assert zapsmall(np.array([12.3456789]))[0] == 12.34568


def test_tukey_interpolant_matches_exact_quantiles():
    # R: qtukey(0.90, 7, c(2.5, 8.25, 40, 200))
    f = _qtukey_interpolant(0.90, 7)
    r = [7.27813500643557, 4.61831935522789, 3.96333638073128, 3.83871580023031]
    np.testing.assert_allclose(f(1.0 / np.array([2.5, 8.25, 40, 200])), r, rtol=1e-6)  # R: eps 1e-4
    assert f(1.0 / 17.3) == pytest.approx(_qtukey(0.90, 7, 17.3), rel=1e-9)


def test_many_distinct_df_use_the_interpolant():
    df = np.linspace(5, 60, 9)
    cv = critical_values(0.95, df, "tukey", nmeans=5, rank=4)
    exact = [_qtukey(0.95, 5, float(d)) / math.sqrt(2) for d in df[[0, 4, 8]]]
    np.testing.assert_allclose(cv[[0, 4, 8]], exact, rtol=1e-8)


def test_unknown_method_is_a_clear_error():
    with pytest.raises(VcompError, match="adjust must be one of"):
        check_adjust("dunnett")
    assert check_adjust("Bonf") == "bonferroni"


def test_large_tukey_families_use_a_checked_interpolant():
    from vcomp.multiplicity import _ptukey_exact, _ptukey_many
    rng = np.random.default_rng(5)
    q = np.abs(rng.normal(0, 2.5, 1000)) * np.sqrt(2)
    df = rng.uniform(38, 41, 1000)
    p = _ptukey_many(q, 50, df)
    idx = rng.choice(1000, 12, replace=False)
    np.testing.assert_allclose(p[idx], _ptukey_exact(q[idx], 50, df[idx]), rtol=1e-5)
