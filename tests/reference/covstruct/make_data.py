"""Write the simulated data of the frozen residual-structure references (then run covstruct.R).

Run from this folder: ``python make_data.py && LC_ALL=C Rscript covstruct.R``.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "mixed"))

from _residual_data import environments, field, repeated  # noqa: E402

DATA = {
    "sim_toep": repeated(n_sub=24, T=4, seed=21, missing=0.15, rho=0.5),
    "sim_ar1h": repeated(n_sub=30, T=5, seed=22, hetero=True, rho=0.6),
    "sim_csh_block": repeated(n_sub=30, T=4, seed=23, hetero=True, blocks=5, nested=True, rho=0.4),
    "sim_us_group": repeated(n_sub=40, T=3, seed=24, groups=2, rho=0.5),
    "env_diag": environments(n_env=4, n_block=3, n_gen=5, seed=25),
    "field_trials": field(nrow=8, ncol=6, trials=2, seed=26),
    "field_nugget": field(nrow=10, ncol=6, missing=0.05, nugget=0.5, seed=27),
}

if __name__ == "__main__":
    for name, d in DATA.items():
        d.to_csv(os.path.join(HERE, name + ".csv"), index=False, float_format="%.10g")
        print(name, d.shape)
