"""The benchmarks: ``tox -e bench -- [--quick] [name ...]`` (tests/bench/run.py).

Each has a full variant (the figures the README quotes) and a quick one (``--quick`` or
CELTIC_BENCH_QUICK=1) that checks the same contracts at a smaller size, in the time
.ci/run can give it.
"""

from __future__ import annotations

import os


def quick() -> bool:
    """True when the quick variant was asked for (``--quick`` or CELTIC_BENCH_QUICK=1)."""
    return os.environ.get('CELTIC_BENCH_QUICK') == '1'
