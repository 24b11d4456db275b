"""vcomp.letters: insert-absorb gives every maximal set of mutually non-significant means."""
import itertools

import numpy as np
from hypothesis import given, settings, strategies as st

from vcomp.letters import compact_letters, insert_absorb, letter_names


def _maximal_cliques(n, sig):
    bad = set(sig) | {(j, i) for i, j in sig}
    ok = [frozenset(s) for r in range(1, n + 1) for s in itertools.combinations(range(n), r)
          if not any((a, b) in bad for a in s for b in s)]
    return {s for s in ok if not any(s < t for t in ok)}


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 8).flatmap(lambda n: st.tuples(st.just(n), st.lists(
    st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] < p[1]), unique=True))))
def test_insert_absorb_is_the_set_of_maximal_groups(case):
    n, sig = case
    cols = insert_absorb(n, sig)
    assert len(cols) == len(set(cols))
    assert set(cols) == _maximal_cliques(n, sig)


def test_letters_name_the_group_of_the_largest_mean_a():
    means = np.array([1.0, 2.0, 3.0, 10.0])
    assert compact_letters(means, [(0, 3), (1, 3)]) == ["b", "b", "ab", "a"]
    assert compact_letters(means, []) == ["a"] * 4
    assert compact_letters(np.zeros(0), []) == []


def test_two_means_share_a_letter_exactly_when_not_significant():
    rng = np.random.default_rng(3)
    x = np.sort(rng.normal(size=15))
    sig = [(i, j) for i in range(15) for j in range(i + 1, 15) if abs(x[i] - x[j]) > 0.8]
    lab = compact_letters(x, sig)
    for i in range(15):
        for j in range(i + 1, 15):
            assert (not set(lab[i]) & set(lab[j])) == ((i, j) in sig)


def test_letter_names_continue_past_52():
    names = letter_names(60)
    assert names[:3] == ["a", "b", "c"] and names[26] == "A" and len(set(names)) == 60
