"""vcomp.classical.structure: nesting and cell counts read from the data."""
import pandas as pd

import vcomp
from vcomp.classical.structure import data_structure


def test_nesting_kinds():
    reused = pd.DataFrame([("r%d" % r, "b%d" % b, k) for r in range(3) for b in range(4) for k in range(2)],
                          columns=["rep", "block", "k"]).assign(y=range(24))
    des = vcomp.Nested(["rep", "block"])
    (n,) = data_structure(reused, "y", des).nesting
    assert n.complete_reuse and not n.unique_labels and (n.min, n.max) == (4, 4)
    unique = reused.assign(block=reused["rep"] + reused["block"])
    (n,) = data_structure(unique, "y", des).nesting
    assert n.unique_labels and not n.complete_reuse
    assert n.describe() == "rep:block: the labels of block are unique to each rep (4 in every rep)"
    uneven = reused[~((reused["rep"] == "r0") & (reused["block"] == "b3"))]
    st = data_structure(uneven, "y", des)
    assert st.nesting[0].describe() == "rep:block: block has 3 to 4 levels per rep" and not st.balanced


def test_counts_and_balance():
    d = vcomp.datasets.load("oats")
    st = data_structure(d, "yield", vcomp.SplitPlot("variety", "nitro", "block"))
    assert st.balanced and not st.empty and not st.rank_deficient
    st = data_structure(d.iloc[1:], "yield", vcomp.SplitPlot("variety", "nitro", "block"))
    assert not st.balanced
    assert [c.term for c in st.unequal_counts] == ["block", "variety", "block:variety", "nitro", "variety:nitro"]
