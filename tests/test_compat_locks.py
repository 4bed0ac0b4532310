"""Every script has a current lock (scripts/X.py.lock, which `uv run scripts/X.py` uses as it is),
the locks pin the very versions the test suite runs (uv.lock), and the MLflow the skill reaches into
(the in-process server handlers) has an upper bound in every header. A new or edited script fails
here until `python3 .ci/lock-scripts` has locked it (docs/production-setup.md#pinned-environments)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest

from conftest import ROOT, SCRIPTS

SCRIPT_FILES = sorted(SCRIPTS.glob("*.py"))
UV = shutil.which("uv") or "uv"


def locked_versions(path) -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for package in tomllib.loads(path.read_text()).get("package", []):
        if "version" in package:
            versions.setdefault(package["name"], set()).add(package["version"])
    return versions


@pytest.mark.parametrize("script", SCRIPT_FILES, ids=lambda p: p.name)
def test_script_has_a_current_lock(script):
    lock = script.with_name(script.name + ".lock")
    assert lock.is_file(), f"{script.name} has no lock: run `python3 .ci/lock-scripts` and commit {lock.name}"
    proc = subprocess.run(
        [UV, "lock", "--script", str(script), "--check"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, f"{lock.name} is out of date: run `python3 .ci/lock-scripts`\n{proc.stderr[-1500:]}"


@pytest.mark.parametrize("script", SCRIPT_FILES, ids=lambda p: p.name)
def test_lock_pins_what_the_suite_tests(script):
    lock = script.with_name(script.name + ".lock")
    if not lock.is_file():
        pytest.skip("no lock yet (test_script_has_a_current_lock says so)")
    suite = locked_versions(ROOT / "uv.lock")
    ours = locked_versions(lock)
    assert "mlflow-skinny" in ours
    differ = {
        name: (sorted(ours[name]), sorted(suite[name]))
        for name in ours.keys() & suite.keys()
        if len(suite[name]) == 1 and ours[name] != suite[name]
    }
    assert not differ, f"{lock.name} pins other versions than uv.lock (script, suite): {differ}: run .ci/lock-scripts"


@pytest.mark.parametrize("script", SCRIPT_FILES, ids=lambda p: p.name)
def test_mlflow_has_an_upper_bound(script):
    header = re.search(r"^# /// script\n(.*?)^# ///$", script.read_text(), re.S | re.M).group(1)
    spec = re.search(r'"mlflow-skinny([^"]*)"', header)
    assert spec and re.search(r"<\d", spec.group(1)), f"{script.name}: mlflow-skinny needs an upper bound"
