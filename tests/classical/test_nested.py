"""The O(n) path of nested chains (vcomp.classical.nested) equals the general cell-model path."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import vcomp

ANOVA = sys.modules["vcomp.classical.anova"]
rng = np.random.default_rng(0)
CASES = {
    "one-way": (vcomp.Nested(["a"]), lambda: pd.DataFrame({"a": rng.integers(0, 30, 200).astype(str)})),
    "two-stage": (vcomp.Nested(["a", "b"]), lambda: pd.DataFrame({"a": rng.integers(0, 8, 300).astype(str),
                                                                 "b": rng.integers(0, 5, 300).astype(str)})),
    "three-stage": (vcomp.Nested(["a", "b", "c"]), lambda: pd.DataFrame(
        {"a": rng.integers(0, 4, 300).astype(str), "b": rng.integers(0, 3, 300).astype(str),
         "c": rng.integers(0, 3, 300).astype(str)})),
    "fixed one-way": (vcomp.CRD("t"), lambda: pd.DataFrame({"t": rng.integers(0, 12, 100).astype(str)})),
    "fixed over random": (vcomp.Design(fixed="f", random=["f:b"]), lambda: pd.DataFrame(
        {"f": rng.integers(0, 4, 200).astype(str), "b": rng.integers(0, 6, 200).astype(str)})),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("ss_type", [1, 2, 3])
def test_chain_path_equals_general_path(name, ss_type, monkeypatch):
    des, make = CASES[name]
    d = make()
    d["y"] = rng.normal(size=len(d)) + rng.normal(size=40)[rng.integers(0, 40, len(d))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            general = des.anova(d, "y", ss_type=ss_type)
        except vcomp.NotEstimableError:
            general = None
        monkeypatch.setattr(ANOVA, "CHAIN_MIN_CELLS", 1)
        if general is None or (ss_type == 3 and len(des.terms) > 1):  # unbalanced: only the hierarchical SS
            with pytest.raises(vcomp.NotEstimableError, match="ss_type=1"):
                des.anova(d, "y", ss_type=ss_type)
            return
        chain = des.anova(d, "y", ss_type=ss_type)
    cols = ["df", "SS", "MS", "F", "p", "den_df"]
    np.testing.assert_allclose(chain.table[cols].to_numpy(float), general.table[cols].to_numpy(float), rtol=1e-10)
    np.testing.assert_allclose(chain.ems.to_numpy(), general.ems.to_numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(chain.components.to_numpy(), general.components.to_numpy(), rtol=1e-10)
    assert list(chain.ems_text) == list(general.ems_text)
    assert chain.error_terms.keys() == general.error_terms.keys()
    for k, v in general.error_terms.items():
        assert chain.error_terms[k] == pytest.approx(v, rel=1e-10)
