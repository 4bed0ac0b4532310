"""Other MLflow versions for the tests: a separate environment per version, built with uv from PyPI
and cached between runs (under $MLFLOW_SKILL_TEST_CACHE, default ~/.cache/mlflow-skill-tests).

Not a test module: tests/conftest.py's `v2_server` fixture uses it; `.ci/run` runs it once
(`uv run python tests/mlflow_envs.py`) so the build is not charged to a test's time-out.

MLflow 2.22 is the last 2.x release; its server needs SQLAlchemy below 2.1
(`FallbackAsyncAdaptedQueuePool` was removed in 2.1).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MLFLOW_2 = ("mlflow==2.22.*", "sqlalchemy<2.1")
UV = shutil.which("uv") or "uv"


def cache_root() -> Path:
    root = os.environ.get("MLFLOW_SKILL_TEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mlflow-skill-tests"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def env_python(name: str, requirements: tuple[str, ...]) -> Path:
    """The python of a cached environment holding `requirements`, built on first use. A lock file
    serialises builders (two pytest workers); the environment is renamed into place only once
    complete, and rebuilt when the requirements change."""
    root = cache_root()
    target = root / name
    stamp = target / "requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    with open(root / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == wanted and (target / "bin" / "python").exists():
            return target / "bin" / "python"
        building = root / f"{name}.building"
        shutil.rmtree(building, ignore_errors=True)
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
        env.pop("VIRTUAL_ENV", None)
        subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(building)], check=True, env=env)
        subprocess.run(
            [UV, "pip", "install", "--quiet", "--python", str(building / "bin" / "python"), *requirements],
            check=True,
            env=env,
            timeout=1800,
        )
        (building / "requirements.txt").write_text(wanted)
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
        # Console scripts keep the build folder in their #! line: run MLflow as `python -m mlflow`.
        return target / "bin" / "python"


def mlflow2_python() -> Path:
    return env_python("mlflow-2.22", MLFLOW_2)


if __name__ == "__main__":
    python = mlflow2_python()
    version = subprocess.run(
        [str(python), "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True, check=True
    )
    print(f"MLflow {version.stdout.strip()} for the 2.x server tests: {python}")


# Data a team would have logged with its own (2.x or 3.x) client: run by that environment's python.
SEED = r"""
import json, os, sys, tempfile
from mlflow import MlflowClient

client = MlflowClient(tracking_uri=sys.argv[1], registry_uri=sys.argv[1])
exp = client.create_experiment(sys.argv[2])
runs = []
for i in range(4):
    run = client.create_run(exp, run_name=f"v-{i}", tags={"team": "a" if i % 2 else "b"})
    rid = run.info.run_id
    client.log_param(rid, "lr", str(0.01 * (i + 1)))
    client.log_param(rid, "opt", "adam" if i < 2 else "sgd")
    for step in range(10):
        client.log_metric(rid, "loss", 1.0 / (step + 1 + i), step=step)
    client.log_metric(rid, "sharpe", 0.5 * i)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "returns.csv")
        with open(path, "w") as fh:
            fh.write("date,returns\n2024-01-02,0.01\n")
        client.log_artifact(rid, path, "backtest")
    client.set_terminated(rid)
    runs.append(rid)
model = sys.argv[2] + "-model"
client.create_registered_model(model)
client.create_model_version(model, f"runs:/{runs[-1]}/backtest", run_id=runs[-1])
client.set_registered_model_alias(model, "champion", "1")
print(json.dumps({"experiment_id": exp, "runs": runs, "model": model}))
"""


def seed(python: Path | str, uri: str, experiment: str) -> dict:
    """Log the same small experiment (4 runs, histories, artifacts, a model version) with `python`'s MLflow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = uri  # MLflow's artifact upload resolves mlflow-artifacts: URIs against it
    with tempfile.TemporaryDirectory(prefix="mlflow-seed-") as cwd:
        proc = subprocess.run(
            [str(python), "-c", SEED, uri, experiment], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
        )
    if proc.returncode != 0:
        raise RuntimeError(f"seeding {uri} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
