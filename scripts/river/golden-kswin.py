#!/usr/bin/env python3
"""Golden fixture for driftline's KSWIN port: River's own detection indices on seeded streams.

How to run (from the repository root; needs Python 3.11 or later, whose random.sample is the one reproduced):

    python3 -m venv /tmp/riverenv-kswin
    /tmp/riverenv-kswin/bin/pip install river==0.26.1 scipy
    /tmp/riverenv-kswin/bin/python scripts/river/golden-kswin.py

It writes test/fixtures/river/kswin.json, which test/drift-kswin.test.ts reads; the tests themselves never need
Python. The fixture was generated with Python 3.11.7, river 0.26.1, scipy 1.17.1, numpy 2.4.6 (recorded in its
"generatedWith" field). Re-running it must reproduce the committed file byte for byte; if it does not, River,
scipy or Python changed behaviour and the TypeScript port has to be re-checked, not the fixture blindly replaced.

Contents:
  streams      real-valued streams made with numpy's default_rng and fixed seeds, rounded to 6 decimals before
               River sees them (the rounded numbers are the stream, which keeps the JSON small and exact), plus
               the integer stream of River's own KSWIN docstring example (many ties).
  cases        River KSWIN detection indices for each stream under several settings (keys in the TS spelling).
  pValueTrace  River's `p_value` after each of the first updates of one case, to pin the whole
               sample -> KS test chain, not only its outcome.
  pythonRandom outputs of random.Random for the building blocks: seeding, getrandbits, _randbelow and sample,
               on both of sample's code paths (pool and set).
  ks2samp      scipy.stats.ks_2samp(x, y, method="auto") statistic and p-value for fixed equal-size samples, and
               the whole p-value table D = h/n, h = 0..n, for the sample sizes the cases use (and n = 7, where
               scipy's exact formula overshoots 1 and scipy falls back to its asymptotic p-value).
"""
from __future__ import annotations

import json
import pathlib
import platform
import random
import warnings

import numpy as np
import river
import scipy
from river import drift
from scipy import stats

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures" / "river" / "kswin.json"


def rounded(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.round(a, 6)]


def make_streams() -> dict[str, dict]:
    streams: dict[str, dict] = {}

    rng = np.random.default_rng(1)
    streams["meanShift"] = {
        "description": "N(0,1) for 1000 values, then N(1.5,1) for 1000; numpy default_rng(1)",
        "values": rounded(np.concatenate([rng.normal(0.0, 1.0, 1000), rng.normal(1.5, 1.0, 1000)])),
    }

    rng = np.random.default_rng(2)
    streams["varianceChange"] = {
        "description": "N(0,1) for 1000 values, then N(0,3^2) for 1000; numpy default_rng(2)",
        "values": rounded(np.concatenate([rng.normal(0.0, 1.0, 1000), rng.normal(0.0, 3.0, 1000)])),
    }

    rng = np.random.default_rng(3)
    streams["stationary"] = {
        "description": "N(0,1) for 2000 values; numpy default_rng(3)",
        "values": rounded(rng.normal(0.0, 1.0, 2000)),
    }

    rng = np.random.default_rng(4)
    i = np.arange(2000)
    mean = 3.0 * np.clip((i - 500) / 1000.0, 0.0, 1.0)
    streams["slowDrift"] = {
        "description": "mean 0 for 500 values, a linear ramp to 3 over the next 1000, then 3; unit noise; "
        "numpy default_rng(4)",
        "values": rounded(mean + rng.normal(0.0, 1.0, 2000)),
    }

    doc = random.Random(12345)
    streams["riverDocExample"] = {
        "description": "River's KSWIN docstring stream: random.Random(12345).choices([0, 1], k=1000) + "
        "choices(range(4, 8), k=1000); integers, so most KS comparisons involve ties",
        "values": doc.choices([0, 1], k=1000) + doc.choices(range(4, 8), k=1000),
    }
    return streams


# Settings in River's spelling; the fixture stores them in the TS spelling.
SETTINGS = {
    "default-seed42": dict(seed=42),
    "default-seed1": dict(seed=1),
    "w200-s50-a0.01-seed7": dict(window_size=200, stat_size=50, alpha=0.01, seed=7),
    # window_size - stat_size = 370 > 277: random.sample takes its set-based path here.
    "w400-s30-seed3": dict(window_size=400, stat_size=30, seed=3),
    "doc-a0.0001-seed42": dict(alpha=0.0001, seed=42),
}
TS_NAMES = {"alpha": "alpha", "window_size": "windowSize", "stat_size": "statSize", "seed": "seed"}

CASES = [
    (stream, setting)
    for stream in ["meanShift", "varianceChange", "stationary", "slowDrift"]
    for setting in ["default-seed42", "default-seed1", "w200-s50-a0.01-seed7", "w400-s30-seed3"]
] + [("riverDocExample", "doc-a0.0001-seed42"), ("riverDocExample", "default-seed42")]

# Warm start: River's `window` argument, longer than window_size so that only its tail is kept.
WARM_CASES = [
    ("meanShift", "default-seed42", {"stream": "stationary", "start": 0, "end": 150}),
    ("varianceChange", "w200-s50-a0.01-seed7", {"stream": "stationary", "start": 500, "end": 560}),
]


def run_kswin(values, params, warm=None):
    detector = drift.KSWIN(**params, window=warm)
    found, pvalues = [], []
    for i, x in enumerate(values):
        detector.update(x)
        pvalues.append(float(detector.p_value))
        if detector.drift_detected:
            found.append(i)
    return found, pvalues


def ts_options(params: dict) -> dict:
    return {TS_NAMES[k]: v for k, v in params.items()}


def python_random() -> dict:
    out: dict = {}

    rng = random.Random(42)
    out["sample70of30seed42"] = {
        "description": "50 successive random.Random(42).sample(range(70), 30): the draws of KSWIN(seed=42) with "
        "default sizes on its first 50 tests (pool path: n=70 <= setsize 277)",
        "seed": 42, "n": 70, "k": 30,
        "draws": [rng.sample(range(70), 30) for _ in range(50)],
    }

    def draws(seed, n, k, count, path):
        r = random.Random(seed)
        return {"seed": seed, "n": n, "k": k, "path": path, "draws": [r.sample(range(n), k) for _ in range(count)]}

    out["samples"] = [
        draws(3, 370, 30, 5, "set"),
        draws(7, 1000, 30, 3, "set"),
        draws(7, 150, 50, 3, "pool"),
        draws(5, 10, 4, 5, "pool (k <= 5 gives setsize 21, and n=10 <= 21)"),
        draws(5, 40, 4, 5, "set (k <= 5 gives setsize 21 < n=40)"),
        draws(9, 70, 70, 2, "pool, a full permutation"),
        draws(9, 70, 0, 1, "set (k = 0 gives setsize 21 < n=70; no draw)"),
    ]

    seeds = [0, 1, 42, -42, 2**32 - 1, 2**32, 2**32 + 7, 2**53 - 1]
    out["getrandbits32"] = []
    for s in seeds:
        r = random.Random(s)
        out["getrandbits32"].append({"seed": s, "values": [r.getrandbits(32) for _ in range(8)]})

    r = random.Random(2024)
    widths = [1, 7, 31, 32, 0, 33, 53, 5]
    out["getrandbitsWidths"] = {"seed": 2024, "widths": widths, "values": [r.getrandbits(k) for k in widths]}

    r = random.Random(3)
    bounds = [1, 2, 3, 5, 70, 100, 2**31 + 3, 2**32, 2**40 + 1]
    out["randbelow"] = {"seed": 3, "bounds": bounds, "values": [r._randbelow(n) for n in bounds]}

    # Past 624 words the state twists again; pin a word far into the stream.
    r = random.Random(42)
    for _ in range(1999):
        r.getrandbits(32)
    out["word2000seed42"] = r.getrandbits(32)
    return out


def ks_results() -> dict:
    out: dict = {"pairs": [], "tables": []}
    rng = np.random.default_rng(11)

    def pair(name, x, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            res = stats.ks_2samp(x, y, method="auto")
        out["pairs"].append({
            "name": name, "x": [float(v) for v in x], "y": [float(v) for v in y],
            "statistic": float(res.statistic), "pValue": float(res.pvalue),
        })

    pair("same distribution, n=30", rounded(rng.normal(0, 1, 30)), rounded(rng.normal(0, 1, 30)))
    pair("shift 1, n=30", rounded(rng.normal(0, 1, 30)), rounded(rng.normal(1, 1, 30)))
    pair("shift 2, n=30", rounded(rng.normal(0, 1, 30)), rounded(rng.normal(2, 1, 30)))
    pair("disjoint, n=30", rounded(rng.uniform(0, 1, 30)), rounded(rng.uniform(2, 3, 30)))
    pair("ties within and across samples, n=30",
         [float(v) for v in rng.integers(0, 4, 30)], [float(v) for v in rng.integers(1, 5, 30)])
    same = rounded(rng.normal(0, 1, 30))
    pair("identical samples, n=30", same, list(same))
    pair("shift 0.8, n=50", rounded(rng.normal(0, 1, 50)), rounded(rng.normal(0.8, 1, 50)))
    pair("n=5", rounded(rng.normal(0, 1, 5)), rounded(rng.normal(0.5, 1, 5)))

    for n in (30, 50, 7):
        statistic, pvalue = [], []
        for h in range(n + 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)
                res = stats.ks_2samp(list(range(n)), list(range(h, h + n)), method="auto")
            statistic.append(float(res.statistic))
            pvalue.append(float(res.pvalue))
        out["tables"].append({
            "n": n,
            "description": f"ks_2samp(range({n}), range(h, h + {n})) for h = 0..{n}: D = h/{n}",
            "statistic": statistic, "pValue": pvalue,
        })
    return out


def main() -> None:
    streams = make_streams()
    cases = []
    for stream, setting in CASES:
        params = SETTINGS[setting]
        found, _ = run_kswin(streams[stream]["values"], params)
        cases.append({"stream": stream, "setting": setting, "options": ts_options(params), "detections": found})
    for stream, setting, warm in WARM_CASES:
        params = SETTINGS[setting]
        window = streams[warm["stream"]]["values"][warm["start"]:warm["end"]]
        found, _ = run_kswin(streams[stream]["values"], params, warm=window)
        cases.append({
            "stream": stream, "setting": setting, "options": ts_options(params), "warmStart": warm,
            "detections": found,
        })

    trace_len = 600
    _, pvalues = run_kswin(streams["meanShift"]["values"], SETTINGS["default-seed42"])
    _, pvalues_ties = run_kswin(streams["riverDocExample"]["values"], SETTINGS["doc-a0.0001-seed42"])
    fixture = {
        "generatedWith": {
            "python": platform.python_version(), "river": river.__version__, "scipy": scipy.__version__,
            "numpy": np.__version__,
        },
        "streams": streams,
        "cases": cases,
        "pValueTrace": [
            {"stream": "meanShift", "options": ts_options(SETTINGS["default-seed42"]), "pValues": pvalues[:trace_len]},
            {"stream": "riverDocExample", "options": ts_options(SETTINGS["doc-a0.0001-seed42"]),
             "pValues": pvalues_ties[900:1100], "from": 900},
        ],
        "pythonRandom": python_random(),
        "ks2samp": ks_results(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    for c in cases:
        print(f"  {c['stream']:16s} {c['setting']:22s} {'warm' if 'warmStart' in c else '    '} {c['detections']}")


if __name__ == "__main__":
    main()
