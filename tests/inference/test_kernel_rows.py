"""vcomp.inference.kernel.contrast_rows: the row-wise 1-df tests equal contrast_test row by row."""
import numpy as np
import pytest

import vcomp
from vcomp import VcompError
from vcomp.inference.kernel import contrast_rows, contrast_test


@pytest.fixture(scope="module")
def fit():
    return vcomp.lmm("yield ~ variety*nitro + (1|block/variety)", vcomp.datasets.load("oats"))


@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger"])
def test_rows_equal_single_contrasts(fit, ddf):
    rng = np.random.default_rng(7)
    L = rng.normal(size=(6, len(fit.fixef)))
    rows = contrast_rows(fit, L, ddf)
    for i in range(6):
        one = contrast_test(fit, L[i], ddf)
        assert rows["estimate"][i] == pytest.approx(one["estimate"], rel=1e-12)
        assert rows["se"][i] == pytest.approx(one["se"], rel=1e-12)
        assert rows["df"][i] == pytest.approx(one["den_df"], rel=1e-9)


def test_rows_validate_shape(fit):
    with pytest.raises(VcompError, match="columns"):
        contrast_rows(fit, np.ones((2, 3)))
    assert contrast_rows(fit, np.zeros((0, len(fit.fixef))))["se"].shape == (0,)
