"""OpenSearch's own REST API tests (the conformance kit in ../shared/conformance) against the embedded engine.

The kit holds 258 YAML tests copied from opensearch-project/OpenSearch and an independent runner. The engine
passes 254 of them; the other 4 are skipped by the runner itself (version ranges before 7.2.0, a
``node_selector`` test, one marked ``version: all``). This test keeps the count from silently falling:
``python ../shared/conformance/run.py --url URL`` lists every test with its reason when it does.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nirbridge.connector.engine_process import running_engine

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
RUNNER = CONFORMANCE / "run.py"
MINIMUM_PASSED = 250


def test_opensearch_rest_tests_pass() -> None:
    if not RUNNER.exists():
        pytest.skip(f"{RUNNER} is missing: the conformance kit lives beside the repository, in ../shared")
    if importlib.util.find_spec("yaml") is None:
        pytest.skip("the conformance runner needs PyYAML (pip install pyyaml)")
    with running_engine() as engine:
        completed = subprocess.run(
            [sys.executable, str(RUNNER), "--url", engine.url, "--json"],
            capture_output=True, text=True, timeout=900, check=False,
        )
    assert completed.stdout.strip(), f"the runner printed no JSON:\n{completed.stderr[-3000:]}"
    report = json.loads(completed.stdout)
    totals = report["totals"]
    failures = [
        f"{entry['file']} :: {test['name']} -- {test['reason']}"
        for entry in report["files"] for test in entry["tests"] if test["status"] == "FAIL"
    ]
    assert totals["passed"] >= MINIMUM_PASSED, (
        f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped; failures:\n"
        + "\n".join(failures)
    )
