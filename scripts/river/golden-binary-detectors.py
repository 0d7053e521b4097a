"""Golden values for the binary drift detectors (src/drift/ddm.ts, eddm.ts, hddm-a.ts, hddm-w.ts).

River 0.26.1 is the reference. This script builds seeded streams, runs River's DDM, EDDM, HDDM_A and HDDM_W on
them, and writes the streams together with River's detection and warning indices to
test/fixtures/river/binary-detectors.json. The TypeScript test (test/drift-binary-detectors.test.ts) reads only
that JSON, so CI needs no Python; rerun this script only to regenerate the fixture, and commit the result.

How to run it (from the repository root):

    python3 -m venv /tmp/riverenv
    /tmp/riverenv/bin/pip install river==0.26.1        # numpy comes with it
    /tmp/riverenv/bin/python scripts/river/golden-binary-detectors.py

The output is deterministic: running it twice gives the same bytes.

Streams (0 = correct, 1 = error, as River's binary detectors expect):
  * numpy.random.default_rng(seed) Bernoulli segments: a jump 0.1 -> 0.5, a small step 0.2 -> 0.3, a stationary
    0.2 stream, and two changes 0.1 -> 0.4 -> 0.1 (the second a decrease, for the two-sided tests);
  * a non-binary stream of values in [0, 1] (Beta(1, 4) then Beta(2, 2)), to pin River's behaviour on
    fractional input (DDM and HDDM_* average it, EDDM counts only x == 1 as an error);
  * River's own docstring stream (random.Random(42).choices, as in river/drift/binary/*.py), whose indices
    must equal those printed in River's docstrings;
  * the stream of the `@example` blocks in src/drift/*.ts, made with driftline's Random (xoshiro128**, seeded
    through splitmix32; ported below as `DriftlineRandom`), so that the examples can be run as tests without
    the JSON and still be River's numbers.

Every index is 0-based: the position in the stream of the update after which River's `drift_detected`
was True (`drifts`). Warnings come in long runs, so `warningRuns` lists them as inclusive [first, last] index
ranges of consecutive updates after which `warning_detected` was True.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import river
from river import drift

OUT = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "river" / "binary-detectors.json"

if river.__version__ != "0.26.1":
    sys.exit(f"river==0.26.1 is the reference, found {river.__version__}")


class DriftlineRandom:
    """src/learners/random.ts `Random`, bit for bit (only what the example stream needs: `next()`)."""

    def __init__(self, seed: int) -> None:
        x = seed & 0xFFFFFFFF

        def split() -> int:
            nonlocal x
            x = (x + 0x9E3779B9) & 0xFFFFFFFF
            z = x
            z = ((z ^ (z >> 16)) * 0x85EBCA6B) & 0xFFFFFFFF
            z = ((z ^ (z >> 13)) * 0xC2B2AE35) & 0xFFFFFFFF
            return (z ^ (z >> 16)) & 0xFFFFFFFF

        self.s = [split(), split(), split(), split()]

    @staticmethod
    def _rotl(v: int, k: int) -> int:
        return ((v << k) | (v >> (32 - k))) & 0xFFFFFFFF

    def next_uint32(self) -> int:
        s0, s1, s2, s3 = self.s
        result = (self._rotl((s1 * 5) & 0xFFFFFFFF, 7) * 9) & 0xFFFFFFFF
        t = (s1 << 9) & 0xFFFFFFFF
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = self._rotl(s3, 11)
        self.s = [s0, s1, s2, s3]
        return result

    def next(self) -> float:
        return self.next_uint32() / 4294967296


def bernoulli(seed: int, segments: list[tuple[float, int]]) -> list[int]:
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for p, length in segments:
        out.extend(int(v) for v in (rng.random(length) < p))
    return out


def fractional(seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(v) for v in rng.beta(1.0, 4.0, 1000)] + [float(v) for v in rng.beta(2.0, 2.0, 1000)]


def river_docstring() -> list[int]:
    rng = random.Random(42)
    stream = rng.choices([0, 1], k=1000)
    return stream + rng.choices([0, 1], k=1000, weights=[0.3, 0.7])


def doc_example() -> list[int]:
    # The loop of the @example blocks: rng.next() < (i < 1000 ? 0.1 : 0.5) ? 1 : 0 with new Random(7).
    rng = DriftlineRandom(7)
    return [1 if rng.next() < (0.1 if i < 1000 else 0.5) else 0 for i in range(2000)]


STREAMS: dict[str, tuple[str, list]] = {
    "jump-0.1-0.5": ("Bernoulli(0.1) x1000 then Bernoulli(0.5) x1000, numpy default_rng(1)", bernoulli(1, [(0.1, 1000), (0.5, 1000)])),
    "step-0.2-0.3": ("Bernoulli(0.2) x1500 then Bernoulli(0.3) x1500, numpy default_rng(2)", bernoulli(2, [(0.2, 1500), (0.3, 1500)])),
    "stationary-0.2": ("Bernoulli(0.2) x3000, numpy default_rng(3)", bernoulli(3, [(0.2, 3000)])),
    "two-changes": ("Bernoulli 0.1 -> 0.4 at 1000 -> 0.1 at 2000, 3000 values, numpy default_rng(4)", bernoulli(4, [(0.1, 1000), (0.4, 1000), (0.1, 1000)])),
    "fractional": ("non-binary: Beta(1,4) x1000 then Beta(2,2) x1000, numpy default_rng(5)", fractional(5)),
    "river-docstring": ("River's docstring stream: random.Random(42).choices, P(1) 0.5 then 0.7 from 1000", river_docstring()),
    "doc-example": ("the @example stream: driftline Random(7), P(1) 0.1 then 0.5 from 1000", doc_example()),
}

# Each setting: River's keyword arguments and the same options as the TypeScript constructors name them.
SETTINGS: dict[str, list[tuple[str, dict, dict]]] = {
    "ddm": [
        ("default", {}, {}),
        ("custom", {"warm_start": 50, "warning_threshold": 1.5, "drift_threshold": 2.5},
         {"warmStart": 50, "warningThreshold": 1.5, "driftThreshold": 2.5}),
    ],
    "eddm": [
        ("default", {}, {}),
        ("custom", {"warm_start": 20, "alpha": 0.8, "beta": 0.75}, {"warmStart": 20, "alpha": 0.8, "beta": 0.75}),
        # The setting of River's EDDM docstring, also used by the @example of src/drift/eddm.ts.
        ("docstring", {"alpha": 0.8, "beta": 0.75}, {"alpha": 0.8, "beta": 0.75}),
    ],
    "hddm-a": [
        ("default", {}, {}),
        ("two-sided", {"two_sided_test": True}, {"twoSidedTest": True}),
        ("custom", {"drift_confidence": 0.0001, "warning_confidence": 0.001, "two_sided_test": True},
         {"driftConfidence": 0.0001, "warningConfidence": 0.001, "twoSidedTest": True}),
    ],
    "hddm-w": [
        ("default", {}, {}),
        ("two-sided", {"two_sided_test": True}, {"twoSidedTest": True}),
        ("custom", {"drift_confidence": 0.0001, "warning_confidence": 0.001, "lambda_val": 0.1, "two_sided_test": True},
         {"driftConfidence": 0.0001, "warningConfidence": 0.001, "lambdaVal": 0.1, "twoSidedTest": True}),
    ],
}

CLASSES = {"ddm": drift.binary.DDM, "eddm": drift.binary.EDDM, "hddm-a": drift.binary.HDDMA, "hddm-w": drift.binary.HDDMW}


def run(kind: str, params: dict, stream: list) -> tuple[list[int], list[int]]:
    detector = CLASSES[kind](**params)
    drifts: list[int] = []
    warnings: list[int] = []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            drifts.append(i)
        if detector.warning_detected:
            warnings.append(i)
    return drifts, warnings


def runs(indices: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def main() -> None:
    cases = []
    for kind, settings in SETTINGS.items():
        for setting, params, options in settings:
            for stream_name, (_, values) in STREAMS.items():
                drifts, warnings = run(kind, params, values)
                cases.append({
                    "detector": kind, "setting": setting, "riverParams": params, "options": options,
                    "stream": stream_name, "drifts": drifts, "warningRuns": runs(warnings),
                })

    # One stream or case per line, so that a regenerated fixture diffs readably.
    lines = ["{", f' "river": {dumps(river.__version__)},', f' "numpy": {dumps(np.__version__)},',
             ' "generator": "scripts/river/golden-binary-detectors.py",', ' "streams": {']
    names = list(STREAMS)
    for k, name in enumerate(names):
        description, values = STREAMS[name]
        comma = "," if k < len(names) - 1 else ""
        lines.append(f'  {dumps(name)}: {{"description":{dumps(description)},"values":{dumps(values)}}}{comma}')
    lines.append(" },")
    lines.append(' "cases": [')
    for k, case in enumerate(cases):
        comma = "," if k < len(cases) - 1 else ""
        lines.append(f"  {dumps(case)}{comma}")
    lines.append(" ]")
    lines.append("}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases on {len(STREAMS)} streams to {OUT}")


if __name__ == "__main__":
    main()
