"""Dense reference for residual covariance structures (tests only; small data).

Builds the n x n covariance V from the data and the parameters exactly as the table of
``shared/notes/covariance-structures.md`` writes it, independently of ``vcomp.mixed.residual``,
and computes from V:

* the REML criterion ``(n-p) log 2pi + log|V| + log|X'V^-1 X| + r'V^-1 r``;
* Satterthwaite (lmerTest's ``contest1D``/``contestMD``): ``A = 2 H^-1``, H the Hessian of the
  criterion in the parameters (central differences of the analytic gradient);
* Kenward-Roger ``expected_linear`` (pbkrtest's ``vcovAdj`` + ``.KR_adjust``) with ``G_i = dV/dpar_i``.

``dV/dpar`` comes from central differences of V (smooth in the parameters).
"""
from __future__ import annotations

import numpy as np
from scipy import special

LOG2PI = np.log(2 * np.pi)


def positions(col) -> tuple[np.ndarray, list]:
    """Positions 0..T-1 of a column's sorted unique values, and the labels."""
    lv = sorted(col.unique())
    index = {v: i for i, v in enumerate(lv)}
    return np.array([index[v] for v in col]), [str(v) for v in lv]


def residual_V(kind: str, frame, par: dict, time=None, subject=None, group=None, row=None, col=None,
               trial=None) -> np.ndarray:
    """The residual covariance of the note's table; ``par`` keyed by the note's parameter names."""
    n = len(frame)
    V = np.zeros((n, n))
    if kind == "diag":
        for i in range(n):
            V[i, i] = par["sigma2:%s" % frame[group].iloc[i]]
        return V
    if kind == "ar1ar1":
        r, _ = positions(frame[row])
        c, _ = positions(frame[col])
        tr = frame[trial].to_numpy() if trial else np.zeros(n)
        same = tr[:, None] == tr[None, :]
        rr, rc = par["rho:%s" % row], par["rho:%s" % col]
        return same * par["sigma2"] * rr ** np.abs(r[:, None] - r[None, :]) * rc ** np.abs(c[:, None] - c[None, :])
    t, tl = positions(frame[time])
    s = frame[subject].astype(str).to_numpy()
    g = frame[group].astype(str).to_numpy() if group else np.array([""] * n)
    same = (s[:, None] == s[None, :]) & (g[:, None] == g[None, :])
    a, b = t[:, None], t[None, :]
    lag = np.abs(a - b)
    pre = np.array([x + ":" if group else "" for x in g])
    if kind in ("us", "ar1h", "csh"):
        sd = np.sqrt([par["sigma2:%s%s" % (pre[i], tl[t[i]])] for i in range(n)])
    else:
        sd = np.full(n, np.sqrt(par["sigma2"]))
    if kind in ("ar1", "ar1h"):
        cor = par["rho"] ** lag
    elif kind in ("cs", "csh"):
        cor = np.where(lag == 0, 1.0, par["rho"])
    elif kind == "toep":
        full = np.array([1.0] + [par["rho:lag%d" % k] for k in range(1, len(tl))])
        cor = full[lag]
    elif kind == "us":
        glv = sorted(set(pre))
        gi = np.array([glv.index(x) for x in pre])
        T = len(tl)
        Cs = np.ones((len(glv), T, T))
        for k, gp in enumerate(glv):
            for lo in range(T):
                for hi in range(lo + 1, T):
                    Cs[k, lo, hi] = Cs[k, hi, lo] = par.get("rho:%s%s:%s" % (gp, tl[lo], tl[hi]), 0.0)
        cor = Cs[gi[:, None], a, b]
    else:  # pragma: no cover
        raise ValueError(kind)
    return same * sd[:, None] * sd[None, :] * cor


def model_matrix(formula: str, data, rows=None):
    """The fixed-effects matrix of ``formula`` as vcomp codes it (``vcomp._coding``), and its column names.

    ``rows``: a frame of new rows to code with the levels of ``data`` (for LS-means grids).
    """
    from vcomp._coding import FixedCoding, model_frame
    from vcomp.terms import parse_formula

    m = parse_formula(formula)
    mf = model_frame(m, data)
    fc = FixedCoding(list(m.fixed), m.intercept, mf.specs, "treatment")
    X = fc.build(mf.values, mf.n) if rows is None else fc.build_frame(rows)
    return X, list(fc.colnames)


def indicator(codes: np.ndarray) -> np.ndarray:
    """n x levels indicator matrix."""
    lv = np.unique(codes)
    return (codes[:, None] == lv[None, :]).astype(float)


def random_matrices(varcorr, data) -> dict:
    """``{(grp, var1, var2): M}`` for lme4's rows of ``varcorr`` (``(expr | g)`` terms with columns of data)."""
    out = {}
    for g, a, b in varcorr[["grp", "var1", "var2"]].itertuples(index=False):
        if g == "Residual":
            continue
        ind = indicator(data[g].astype(str).to_numpy())

        def z(c, ind=ind):
            return ind * (1.0 if c == "(Intercept)" else data[c].to_numpy(dtype=float)[:, None])
        if not isinstance(b, str):
            out[(g, a, None)] = z(a) @ z(a).T
        else:
            za, zb = z(a), z(b)
            out[(g, a, b)] = za @ zb.T + zb @ za.T
    return out


class DenseModel:
    """V(par) = residual_V(par) + sum_a par[a] M_a (random-effect covariances times fixed n x n matrices).

    Parameters
    ----------
    X, y : ndarray
    Vres : callable
        ``Vres(par dict) -> n x n`` residual covariance.
    names : list of str
        Parameter names (the residual ones, then the random-effect (co)variances).
    mats : dict
        random-effect parameter name -> its ``n x n`` matrix ``M_a`` (``Z_a Z_a'`` for a variance,
        ``Z_a Z_b' + Z_b Z_a'`` for a covariance).
    """

    def __init__(self, X, y, Vres, names, mats=None):
        self.X, self.y = np.asarray(X, float), np.asarray(y, float)
        self.Vres, self.names, self.mats = Vres, list(names), dict(mats or {})

    def V(self, v: np.ndarray) -> np.ndarray:
        par = dict(zip(self.names, v))
        V = self.Vres(par)
        for a, M in self.mats.items():
            V = V + par[a] * M
        return V

    def dV(self, v: np.ndarray) -> list:
        out = []
        for i in range(len(v)):
            h = 1e-5 * max(abs(v[i]), 1e-3)
            e = np.zeros(len(v))
            e[i] = h
            out.append((self.V(v + e) - self.V(v - e)) / (2 * h))
        return out

    def criterion(self, v: np.ndarray) -> float:
        X, y = self.X, self.y
        n, p = X.shape
        V = self.V(v)
        Vi = np.linalg.inv(V)
        XVX = X.T @ Vi @ X
        beta = np.linalg.solve(XVX, X.T @ Vi @ y)
        r = y - X @ beta
        return float((n - p) * LOG2PI + np.linalg.slogdet(V)[1] + np.linalg.slogdet(XVX)[1] + r @ Vi @ r)

    def _P(self, v):
        X = self.X
        Vi = np.linalg.inv(self.V(v))
        Phi = np.linalg.inv(X.T @ Vi @ X)
        return Vi, Phi, Vi - Vi @ X @ Phi @ X.T @ Vi

    def gradient(self, v: np.ndarray) -> np.ndarray:
        _, _, P = self._P(v)
        Py = P @ self.y
        return np.array([np.trace(P @ G) - Py @ G @ Py for G in self.dV(v)])

    def hessian(self, v: np.ndarray) -> np.ndarray:
        H = np.zeros((len(v), len(v)))
        for i in range(len(v)):
            h = 1e-4 * max(abs(v[i]), 1e-3)
            e = np.zeros(len(v))
            e[i] = h
            H[i] = (self.gradient(v + e) - self.gradient(v - e)) / (2 * h)
        return (H + H.T) / 2

    # ------------------------------------------------------------------ inference at v
    def setup(self, v: np.ndarray) -> None:
        X = self.X
        Vi, Phi, P = self._P(v)
        self.v, self.Phi = v, Phi
        self.beta = Phi @ X.T @ Vi @ self.y
        G = self.dV(v)
        self.Pm = [-X.T @ Vi @ Gi @ Vi @ X for Gi in G]
        self.Qm = {(i, j): X.T @ Vi @ G[i] @ Vi @ G[j] @ Vi @ X for i in range(len(G)) for j in range(len(G))}
        IE = np.array([[0.5 * np.trace(P @ Gi @ P @ Gj) for Gj in G] for Gi in G])
        self.W = np.linalg.inv(IE)
        U = sum(self.W[i, j] * (self.Qm[i, j] - self.Pm[i] @ Phi @ self.Pm[j])
                for i in range(len(G)) for j in range(len(G)))
        self.PhiA = Phi + 2 * Phi @ U @ Phi
        self.A = 2 * np.linalg.inv(self.hessian(v))

    def satterthwaite(self, L: np.ndarray) -> dict:
        """lmerTest's contest1D / contestMD: num_df, den_df, F (and se for one row)."""
        L = np.atleast_2d(L)
        Phi = self.Phi
        jac = [-(Phi @ Pi @ Phi) for Pi in self.Pm]

        def df1(l):
            g = np.array([l @ J @ l for J in jac])
            return 2 * (l @ Phi @ l) ** 2 / (g @ self.A @ g)

        if L.shape[0] == 1:
            l = L[0]
            return {"num_df": 1, "den_df": df1(l), "F": (l @ self.beta) ** 2 / (l @ Phi @ l),
                    "se": np.sqrt(l @ Phi @ l)}
        d, U = np.linalg.eigh(L @ Phi @ L.T)
        d, U = d[::-1], U[:, ::-1]
        PL = U.T @ L
        F = float(np.sum((PL @ self.beta) ** 2 / d) / len(d))
        nu = np.array([df1(l) for l in PL])
        E = np.sum(nu / (nu - 2))
        return {"num_df": len(d), "den_df": 2 * E / (E - len(d)), "F": F}

    def kenward_roger(self, L: np.ndarray) -> dict:
        """pbkrtest's .KR_adjust (expected information, no second-order term)."""
        L = np.atleast_2d(L)
        Phi, W = self.Phi, self.W
        q = L.shape[0]
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        us = [Theta @ Phi @ Pi @ Phi for Pi in self.Pm]
        tr = np.array([np.trace(u) for u in us])
        A1 = tr @ W @ tr
        A2 = sum(W[i, j] * np.sum(us[i] * us[j].T) for i in range(len(us)) for j in range(len(us)))
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0, V1, V2 = 1 + c1 * B, 1 - c2 * B, 1 - c3 * B
        rho = 1 / q * ((1 - A2 / q) / V1) ** 2 * V0 / V2
        df2 = 4 + (q + 2) / (q * rho - 1)
        lam = df2 * (1 - A2 / q) / (df2 - 2)
        Lb = L @ self.beta
        F = lam * float(Lb @ np.linalg.solve(L @ self.PhiA @ L.T, Lb)) / q
        out = {"num_df": q, "den_df": df2, "F": F}
        if q == 1:
            out["se"] = float(np.sqrt(L[0] @ self.PhiA @ L[0]))
        return out


def fdist_p(F, d1, d2):
    return float(special.fdtrc(d1, d2, F))
