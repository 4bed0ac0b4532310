"""Benchmark: what following a live run costs the tracking server, `--follow` against a naive loop
that calls the script every second, in one run, as ratios.

One training run on a local tracking server (sqlite, started here): a writer logs `loss` and
`acc` at one step every 0.2 s for --seconds (default 60), then ends the run FINISHED. Three
clients watch it at the same time, each through its own counting proxy on 127.0.0.1
(tests/faultproxy.py records every request it forwards):
- naive: `uv run scripts/get_metric_history.py --run-id ID --metrics loss,acc` started every
  second (back to back when a call takes longer) until the run has ended;
- follow --every 1: the same script with `--follow --every 1` (the same 1 s responsiveness);
- follow (default): `--follow` with the default --every (10 s, backing off while idle).
Reported per client: requests, requests a minute, the ratio to the naive loop, and the bytes it
printed on stdout (what an agent reads). Target: --follow --every 1 sends at most half the naive
loop's requests a minute, and never more than one request a second.

Usage:
  cd /work/wt && uv run python bench/bench_follow.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

SCRIPT = ROOT / "scripts" / "get_metric_history.py"
STEP_PAUSE = 0.2


@dataclass
class Client:
    name: str
    proxy: FaultProxy
    started: float = 0.0
    ended: float = 0.0
    calls: int = 0
    stdout_bytes: int = 0
    exit_code: int | None = None

    @property
    def minutes(self) -> float:
        return max(self.ended - self.started, 1e-9) / 60

    @property
    def requests(self) -> int:
        return len(self.proxy.requests)


def writer(uri: str, run_id: str, seconds: float) -> None:
    api = uri + "/api/2.0/mlflow"
    with requests.Session() as http:
        step, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            now = int(time.time() * 1000)
            metrics = [
                {"key": "loss", "value": 2.0 / (1 + step), "timestamp": now, "step": step},
                {"key": "acc", "value": 1 - 1.0 / (1 + step), "timestamp": now, "step": step},
            ]
            http.post(f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}, timeout=30)
            step += 1
            time.sleep(STEP_PAUSE)
        http.post(f"{api}/runs/update", json={"run_id": run_id, "status": "FINISHED"}, timeout=30)


def start_run(uri: str) -> str:
    api = uri + "/api/2.0/mlflow"
    exp = requests.post(f"{api}/experiments/create", json={"name": f"bench-follow-{time.time_ns()}"}, timeout=30)
    run = requests.post(f"{api}/runs/create", json={"experiment_id": exp.json()["experiment_id"]}, timeout=30)
    return run.json()["run"]["info"]["run_id"]


def naive_loop(client: Client, cmd: list[str], env: dict, done: threading.Event) -> None:
    client.started = time.monotonic()
    while True:
        finished_before = done.is_set()  # one last call after the run ended, as a poller would
        began = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
        client.calls += 1
        client.stdout_bytes += len(proc.stdout)
        if finished_before:
            break
        time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
    client.ended = time.monotonic()


def follow(client: Client, cmd: list[str], env: dict) -> None:
    client.started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=3600)
    client.ended = time.monotonic()
    client.calls, client.stdout_bytes, client.exit_code = 1, len(proc.stdout), proc.returncode


def measure(server_uri: str, tmp: Path, seconds: float) -> list[Client]:
    uv = [conftest.UV, "run", "--quiet", str(SCRIPT)]
    base_env = conftest.clean_env({"UV_PYTHON_DOWNLOADS": "never"}, env_dir=tmp)
    subprocess.run([*uv, "--help"], env=base_env, capture_output=True, check=True)  # warm uv's environment
    run_id = start_run(server_uri)
    clients = [Client(name, FaultProxy(server_uri)) for name in ("naive", "follow_every_1", "follow_default")]
    env = {c.name: {**base_env, "MLFLOW_TRACKING_URI": c.proxy.uri} for c in clients}
    args = ["--run-id", run_id, "--metrics", "loss,acc"]
    done = threading.Event()
    write = threading.Thread(target=lambda: (writer(server_uri, run_id, seconds), done.set()))
    workers = [
        threading.Thread(target=naive_loop, args=(clients[0], [*uv, *args], env["naive"], done)),
        threading.Thread(
            target=follow, args=(clients[1], [*uv, *args, "--follow", "--every", "1"], env[clients[1].name])
        ),
        threading.Thread(target=follow, args=(clients[2], [*uv, *args, "--follow"], env[clients[2].name])),
    ]
    write.start()
    for w in workers:
        w.start()
    for t in [write, *workers]:
        t.join()
    for c in clients:
        c.proxy.close()
    return clients


def report(clients: list[Client], seconds: float) -> bool:
    naive = clients[0]
    print(
        f"\nOne run logging loss and acc every {STEP_PAUSE}s for {seconds:.0f}s; "
        "each client through its own counting proxy\n"
    )
    print("| client | calls | requests | wall time | requests a minute | vs naive | stdout bytes | exit |")
    print("|---|---|---|---|---|---|---|---|")
    for c in clients:
        rpm = c.requests / c.minutes
        ratio = (naive.requests / naive.minutes) / rpm if rpm else float("inf")
        versus = "baseline" if c is naive else f"{ratio:.1f}x fewer"
        print(
            f"| {c.name} | {c.calls} | {c.requests} | {c.minutes * 60:.0f} s | {rpm:.0f} | {versus} | "
            f"{c.stdout_bytes:,} | {c.exit_code if c.exit_code is not None else '-'} |"
        )
    every_1 = clients[1]
    ok = (
        every_1.exit_code == 0
        and clients[2].exit_code == 0
        and every_1.requests / every_1.minutes <= 0.5 * naive.requests / naive.minutes
        and every_1.requests / every_1.minutes <= 60 + 10  # the paced polls, plus the first and final reads
    )
    print(f"\ntargets {'met' if ok else 'NOT met'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    server = conftest.start_server(tmp / "server")
    try:
        return 0 if report(measure(server.uri, tmp, opts.seconds), opts.seconds) else 1
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
