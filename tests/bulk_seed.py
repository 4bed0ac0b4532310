"""Bulk seeding of a tracking server's sqlite file: thousands of runs in seconds.

Used by bench/bench_query.py and tests/test_load.py. Creating 20,000 runs through the API
would take minutes and is not what those measure; this writes the rows MLflow's own client
would write (runs, metrics, latest_metrics, params, tags) with bulk SQL, straight into the
server's database. The server must be a local sqlite-backed one (conftest.start_server).
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from pathlib import Path


def seed(db: Path, experiment_id: str, n: int) -> str:
    """n finished runs with 5 metrics, 5 params, 5 tags each, written in bulk; returns one run id."""
    rng = random.Random(7)
    t0 = 1_700_000_000_000
    runs, metrics, params, tags = [], [], [], []
    for i in range(n):
        rid = uuid.uuid4().hex
        start = t0 + i * 1000
        name = f"run-{i:05d}"
        runs.append(
            (
                rid,
                name,
                "LOCAL",
                "bench",
                "",
                "bench",
                "FINISHED",
                start,
                start + 60_000,
                "",
                "active",
                f"mlflow-artifacts:/{experiment_id}/{rid}/artifacts",
                int(experiment_id),
            )
        )
        for key in ("sharpe", "sortino", "max_drawdown", "cagr", "win_rate"):
            metrics.append((key, rng.uniform(-1, 3), start, rid, 0, 0))
        for key, value in (
            ("fast", rng.randint(5, 50)),
            ("slow", rng.randint(50, 200)),
            ("lr", rng.random() / 100),
            ("symbol", "BTC-USD"),
            ("strategy", rng.choice(["momentum", "meanrev", "breakout"])),
        ):
            params.append((key, str(value), rid))
        tags += [
            ("mlflow.runName", name, rid),
            ("mlflow.user", "bench", rid),
            ("mlflow.source.name", "backtest.py", rid),
            ("mlflow.source.type", "LOCAL", rid),
            ("team", "quant", rid),
        ]
    con = sqlite3.connect(db, timeout=60)
    with con:
        con.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            runs,
        )
        con.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?,?,?,?,?,?)", metrics
        )
        con.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?,?,?,?,?,?)", metrics
        )
        con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", params)
        con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
    con.close()
    return runs[-1][0]
