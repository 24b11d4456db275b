"""Classical ANOVA frozen against the R oracle (ems.R): df, SS, MS, EMS, Q, MoM, F tests, error terms."""
import pytest

import vcomp
from _refcases import case_data, case_design, compare, load_cases

CASES = load_cases()
TYPED = [(r, t) for r in CASES for t in (1, 2, 3) if r["classical"].get("type%d" % t) is not None]
NO_TYPE3 = [r for r in CASES if "type3" in r["classical"] and r["classical"]["type3"] is None]


@pytest.mark.skipif(not CASES, reason="no reference cases found")
@pytest.mark.parametrize("r,ss_type", TYPED, ids=["%s-type%d" % (r["name"], t) for r, t in TYPED])
def test_matches_r(r, ss_type):
    res = case_design(r).anova(case_data(r), r["response"], ss_type=ss_type)
    assert compare(r, ss_type, res) == []
    assert list(res.table.index) == case_design(r).terms_for(case_data(r)) + ["Residual"]


#: NO_TYPE3 cases whose rank deficiency comes from empty cells of crossed terms (type III still raises);
#: the others are rank deficient only through unequal nesting and get the nested-cell type III
RAISES = {"sim_splitplot_missing_whole"}


@pytest.mark.parametrize("r", NO_TYPE3, ids=[r["name"] for r in NO_TYPE3])
def test_rank_deficient_type3_and_type1_works(r):
    d = case_design(r)
    if r["name"] in RAISES:
        with pytest.raises(vcomp.NotEstimableError, match="ss_type=1"):
            d.anova(case_data(r), r["response"], ss_type=3)
    else:
        res3 = d.anova(case_data(r), r["response"], ss_type=3)
        assert res3.rank_deficient and res3.type3_coding == "nested-cell"
    res = d.anova(case_data(r), r["response"], ss_type=1)
    assert res.rank_deficient and res.type3_coding is None
    assert compare(r, 1, res) == []


def test_missing_whole_plot_names_terms():
    r = next((c for c in CASES if c["name"] == "sim_splitplot_missing_whole"), None)
    if r is None:
        pytest.skip("case not present")
    with pytest.raises(vcomp.NotEstimableError) as e:
        case_design(r).anova(case_data(r), r["response"], ss_type=3)
    assert "'block:A'" in str(e.value)
