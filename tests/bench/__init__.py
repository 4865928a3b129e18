# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

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
