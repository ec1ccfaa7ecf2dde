#!/usr/bin/env python3
"""Reference values for lab/report/stats.ts, computed with SciPy, NumPy and statsmodels.

The TypeScript test (test/report/stats-reference.test.ts) reads the JSON this prints and compares
our functions with it; the inputs live in the JSON too, so there is one copy of every vector.

Regenerate (Debian: apt-get install python3-scipy python3-statsmodels):

    /usr/bin/python3 test/report/reference/stats_reference.py > test/report/reference/stats-reference.json

What each reference is, and why it is independent of our code:

* Mann-Whitney U: scipy.stats.mannwhitneyu(x, y, alternative='two-sided', method=...). Our U is the
  U of the first sample (pairs x > y, ties one half), which is SciPy's `statistic`. Our two-sided
  p doubles the smaller tail, which is SciPy's 2 * P(U >= max(U1, U2)). We use the exact null
  distribution when there are no ties and both groups have at most 50 values, else the normal
  approximation with tie correction and, always, the 0.5 continuity correction: the reference call
  is method='exact' or method='asymptotic' with use_continuity=True to match. The uncorrected
  p-value is stored too, so the test can show that it tells the two apart.
* Normal upper tail: scipy.stats.norm.sf, which the asymptotic p-values are built on.
* Holm: statsmodels.stats.multitest.multipletests(p, method='holm'), cross-checked here against the
  textbook step-down definition.
* Bootstrap: our resampling draws from our own seeded generator (mulberry32, seeded by a 32-bit
  FNV-1a hash of a text key), so no other library can draw the same resamples. This script
  re-implements that generator from its published definition, draws the same indices, and takes
  each resample's median with numpy.median and the 2.5% / 97.5% points with
  numpy.quantile(method='linear') (R type 7, the method our code documents). What is checked
  independently is therefore the median, the percentile interval and the resampling scheme (with
  replacement, index floor(u * n), b before a for a difference), not the randomness of the
  generator itself.
* Quartiles: numpy.quantile(method='linear').
* Linear fit: scipy.stats.linregress (slope, intercept, rvalue ** 2), cross-checked against
  numpy.polyfit(deg=1).
"""
import json
import math
import platform
import sys

import numpy as np
import scipy
import scipy.stats as st
import statsmodels
from statsmodels.stats.multitest import multipletests

M32 = 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# Our seeded generator, re-implemented from its definition (lab/random.ts, lab/report/stats.ts).


def fnv1a32(key: str) -> int:
    h = 0x811C9DC5
    for ch in key:
        # JavaScript's charCodeAt: UTF-16 code units; every key here is ASCII.
        assert ord(ch) < 128
        h ^= ord(ch)
        h = (h * 0x01000193) & M32
    return h


def mulberry32(seed: int):
    state = seed & M32

    def imul(a: int, b: int) -> int:
        return (a * b) & M32

    def nxt() -> float:
        nonlocal state
        state = (state + 0x6D2B79F5) & M32
        t = state
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296

    return nxt


BASE_SEED = "xdp-chain-lab-report-v1"


def seeded(key: str):
    return mulberry32(fnv1a32(f"{BASE_SEED}:{key}"))


def resample_median(xs, rnd):
    n = len(xs)
    idx = [math.floor(rnd() * n) for _ in range(n)]
    return float(np.median(np.asarray(xs, dtype=float)[idx])), idx


def percentile_ci(values):
    lo, hi = np.quantile(np.asarray(values, dtype=float), [0.025, 0.975], method="linear")
    return [float(lo), float(hi)]


# ---------------------------------------------------------------------------------------------
# Mann-Whitney U


def has_ties(x, y) -> bool:
    pooled = list(x) + list(y)
    return len(set(pooled)) != len(pooled)


def mw_case(name, note, x, y):
    x = [float(v) for v in x]
    y = [float(v) for v in y]
    ties = has_ties(x, y)
    exact = not ties and len(x) <= 50 and len(y) <= 50
    case = {"name": name, "note": note, "x": x, "y": y, "ties": ties}
    if exact:
        r = st.mannwhitneyu(x, y, alternative="two-sided", method="exact")
        case.update(method="exact", u=float(r.statistic), p=float(r.pvalue),
                    source="scipy.stats.mannwhitneyu(x, y, alternative='two-sided', method='exact')")
    else:
        r = st.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
        r0 = st.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=False)
        case.update(method="normal", u=float(r.statistic), p=float(r.pvalue), p_no_continuity=float(r0.pvalue),
                    source="scipy.stats.mannwhitneyu(x, y, alternative='two-sided', method='asymptotic', use_continuity=True); "
                           "p_no_continuity: the same with use_continuity=False")
    return case


def no_tie_floats(rng, loc, scale, size, decimals=3):
    """Rounded normal draws without repeats (the exact cases need a tie-free pool)."""
    return [float(v) for v in np.round(rng.normal(loc, scale, size), decimals)]


def mann_whitney_cases():
    rng = np.random.RandomState(20240611)
    cases = [
        mw_case("exact 4 vs 5", "small, no ties, interleaved",
                [1.1, 2.3, 0.7, 3.9], [2.9, 4.4, 5.1, 3.3, 6.0]),
        mw_case("exact 3 vs 12", "unequal sizes, x mostly below y",
                [101.5, 99.2, 104.8],
                [103.1, 105.6, 102.2, 107.9, 106.4, 100.3, 108.8, 104.1, 109.5, 105.0, 110.2, 103.7]),
        mw_case("exact 8 vs 8", "ns per packet, overlapping groups",
                [18043.6, 18101.2, 17990.4, 18220.9, 18077.3, 18150.8, 18012.5, 18188.1],
                [18087.2, 18233.8, 18301.4, 18120.6, 18265.9, 18199.3, 18342.7, 18254.0]),
    ]
    a = no_tie_floats(rng, 100.0, 5.0, 30)
    b = no_tie_floats(rng, 102.5, 5.0, 40)
    cases.append(mw_case("exact 30 vs 40", "normal draws (seed 20240611), shifted by half a standard deviation", a, b))
    a = no_tie_floats(rng, 0.0, 1.0, 50, 6)
    b = no_tie_floats(rng, 0.3, 1.0, 50, 6)
    cases.append(mw_case("exact 50 vs 50", "largest size still exact", a, b))
    cases.append(mw_case("ties 4 vs 4", "pooled 1,2,2,2,3,3,3,4 (the hand-worked case of stats.test.ts)",
                         [1, 2, 2, 3], [2, 3, 3, 4]))
    a = [float(v) for v in np.round(rng.normal(100.0, 3.0, 15))]
    b = [float(v) for v in np.round(rng.normal(102.0, 3.0, 18))]
    cases.append(mw_case("ties 15 vs 18", "integer ns (rounded normal draws): many tie groups", a, b))
    centre = mw_case("ties, U next to the centre", "U = 7.5, mn/2 = 8: the continuity correction makes z = 0, p = 1",
                     [1, 3, 5, 6], [2, 3, 4, 7])
    assert centre["u"] == 7.5 and centre["p"] == 1.0
    cases.append(centre)
    a = no_tie_floats(rng, 10.0, 1.0, 60, 6)
    b = no_tie_floats(rng, 10.2, 1.0, 55, 6)
    cases.append(mw_case("normal 60 vs 55, no ties", "above 50 per group: normal approximation without ties", a, b))
    a = no_tie_floats(rng, 0.0, 1.0, 80, 6)
    b = no_tie_floats(rng, 3.0, 1.0, 80, 6)
    cases.append(mw_case("normal 80 vs 80, separated", "p far below 1e-16: the tail must not round to 0", a, b))
    # A case's name says which branch of our code it exercises: make sure it really does.
    for c in cases:
        assert c["ties"] == c["name"].startswith("ties"), c["name"]
        assert c["method"] == ("exact" if c["name"].startswith("exact") else "normal"), c["name"]
    return cases


def normal_tail_cases():
    zs = [-1.5, 0.0, 0.3, 1.0, 1.959963984540054, 2.5, 2.82, 2.83, 4.0, 6.0, 8.5, 10.0, 20.0, 37.0]
    return [{"z": z, "sf": float(st.norm.sf(z)), "source": "scipy.stats.norm.sf(z)"} for z in zs]


# ---------------------------------------------------------------------------------------------
# Holm


def holm_textbook(ps):
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


def holm_cases():
    inputs = [
        ("six unsorted", [0.04, 0.001, 0.03, 0.2, 0.012, 0.049]),
        ("eight with a tie, raised to monotone and capped at 1", [0.5, 0.01, 0.01, 0.3, 0.0001, 0.04, 0.9, 0.02]),
        ("five from a report's pairs", [3.2e-5, 0.0071, 0.0069, 0.61, 0.0021]),
        ("fifteen pairs of one kernel and metric", [0.33, 0.0004, 0.051, 0.72, 0.0125, 0.002, 0.98, 0.047,
                                                     0.15, 0.0009, 0.26, 0.0333, 0.6, 0.011, 0.0001]),
    ]
    cases = []
    for name, ps in inputs:
        reject, adj, _, _ = multipletests(ps, alpha=0.05, method="holm")
        adj = [float(v) for v in adj]
        tb = holm_textbook(ps)
        assert all(abs(a - b) <= 1e-15 * max(1.0, abs(b)) for a, b in zip(adj, tb)), (name, adj, tb)
        cases.append({"name": name, "p": ps, "adjusted": adj,
                      "source": "statsmodels.stats.multitest.multipletests(p, method='holm')[1]; agrees with the textbook step-down"})
    return cases


# ---------------------------------------------------------------------------------------------
# Bootstrap and summaries


RESAMPLES = 2000


def bootstrap_ci_case(name, xs, seed_key, resamples=RESAMPLES):
    rnd = seeded(f"median:{seed_key}")
    meds = []
    first = None
    for i in range(resamples):
        med, idx = resample_median(xs, rnd)
        if i == 0:
            first = idx
        meds.append(med)
    return {"name": name, "values": [float(v) for v in xs], "seed_key": seed_key, "resamples": resamples,
            "first_resample_indices": first, "ci": percentile_ci(meds),
            "source": "resample indices from a re-implementation of our mulberry32/FNV-1a seeding; "
                      "numpy.median per resample; numpy.quantile([0.025, 0.975], method='linear')"}


def bootstrap_diff_case(name, a, b, seed_key, resamples=RESAMPLES):
    rnd = seeded(f"diff:{seed_key}")
    diffs = []
    for _ in range(resamples):
        mb, _ = resample_median(b, rnd)  # our code draws b's resample first, then a's
        ma, _ = resample_median(a, rnd)
        diffs.append(mb - ma)
    return {"name": name, "a": [float(v) for v in a], "b": [float(v) for v in b], "seed_key": seed_key,
            "resamples": resamples, "ci": percentile_ci(diffs),
            "source": "as for the median CI, one generator for both groups, b's resample drawn before a's; "
                      "CI of median(b) - median(a)"}


def summary_case(name, xs, seed_key, resamples=RESAMPLES):
    q1, med, q3 = np.quantile(np.asarray(xs, dtype=float), [0.25, 0.5, 0.75], method="linear")
    ci = bootstrap_ci_case(name, xs, seed_key, resamples)["ci"]
    return {"name": name, "values": [float(v) for v in xs], "seed_key": seed_key, "resamples": resamples,
            "n": len(xs), "median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1), "ci": ci,
            "source": "numpy.quantile([0.25, 0.5, 0.75], method='linear'); CI as for the median CI"}


def bootstrap_cases():
    ns11 = [18043.57, 18087.15, 18233.75, 18012.4, 18101.9, 18087.15, 19120.3, 17998.6, 18150.2, 18066.0, 18120.75]
    return {
        "median_ci": [
            bootstrap_ci_case("8 values with an outlier (the vector of stats.test.ts)", [10, 12, 9, 11, 30, 10.5, 9.5, 11.5], "cell-a"),
            bootstrap_ci_case("11 ns per packet with a tie", ns11, "4.19/manual/time_per_packet_ns"),
            bootstrap_ci_case("6 values, 999 resamples (fractional quantile index)", [3.2, 1.7, 4.4, 2.9, 3.8, 2.1], "odd-count", 999),
        ],
        "median_diff_ci": [
            bootstrap_diff_case("7 vs 9 cycles per packet", [88225.1, 88310.4, 88190.7, 88402.2, 88275.9, 88150.3, 88333.0],
                                [88430.8, 88512.6, 88390.1, 88605.4, 88471.2, 88550.9, 88420.0, 88688.3, 88499.5],
                                "4.19/cycles_per_packet/manual/patched"),
        ],
        "summary": [
            summary_case("11 ns per packet", ns11, "4.19/manual/time_per_packet_ns"),
            summary_case("4 values (even n)", [4, 3, 2, 1], "k"),
        ],
    }


# ---------------------------------------------------------------------------------------------
# Linear fit


def fit_case(name, pts):
    x = np.array([p[0] for p in pts], dtype=float)
    y = np.array([p[1] for p in pts], dtype=float)
    lr = st.linregress(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert abs(slope - lr.slope) <= 1e-10 * abs(lr.slope), name
    assert abs(intercept - lr.intercept) <= 1e-10 * max(1.0, abs(lr.intercept)), name
    return {"name": name, "points": [[float(a), float(b)] for a, b in pts], "slope": float(lr.slope),
            "intercept": float(lr.intercept), "r2": float(lr.rvalue ** 2),
            "source": "scipy.stats.linregress (slope, intercept, rvalue**2); numpy.polyfit(deg=1) agrees to 1e-10"}


def fit_cases():
    return [
        fit_case("ns per packet against chain length 1..8",
                 [(1, 412.3), (2, 455.1), (3, 497.8), (4, 551.0), (5, 589.4), (6, 640.2), (7, 676.9), (8, 731.5)]),
        fit_case("geometric lengths 1..32, noisy", [(1, 90.1), (2, 101.7), (4, 118.2), (8, 171.0), (16, 250.3), (32, 431.9)]),
        fit_case("three points, negative slope", [(10, 5.5), (20, 3.1), (30, 1.2)]),
        fit_case("large y offset", [(1, 18043.57), (2, 18087.15), (3, 18233.75), (4, 18261.2), (5, 18390.4)]),
    ]


def main():
    out = {
        "generated_by": "test/report/reference/stats_reference.py",
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                     "statsmodels": statsmodels.__version__},
        "mann_whitney": mann_whitney_cases(),
        "normal_sf": normal_tail_cases(),
        "holm": holm_cases(),
        "bootstrap": bootstrap_cases(),
        "fit_line": fit_cases(),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
