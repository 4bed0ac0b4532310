"""get_metric_history.py --plot FILE.png against the real server fixture: the PNG is written, is a
valid PNG of the expected size, holds the labelled extremes (exact or sample) in its Description
text chunk, and matplotlib is imported only when --plot is given."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import requests

from conftest import SCRIPTS, clean_env, unique

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def runs(server, client):
    from mlflow.entities import Metric

    exp = client.create_experiment(unique("plot"))
    ids = {name: client.create_run(exp, run_name=name).info.run_id for name in ("a", "b", "stuck")}
    client.log_batch(ids["a"], metrics=[Metric("val_loss", 1 / (i + 1), T0 + i, i) for i in range(200)])
    client.log_batch(ids["b"], metrics=[Metric("val_loss", 2 / (i + 1), T0 + i, i) for i in range(200)])
    stuck = np.random.default_rng(3).normal(size=3000)  # every point at step 0: only a sample is cheap
    api = server.uri + "/api/2.0/mlflow/runs/log-batch"
    for start in range(0, 3000, 1000):
        batch = [
            {"key": "m", "value": float(stuck[i]), "timestamp": T0 + i, "step": 0} for i in range(start, start + 1000)
        ]
        requests.post(api, json={"run_id": ids["stuck"], "metrics": batch}, timeout=60).raise_for_status()
    return ids


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, checking each CRC: an independent reading of the file."""
    assert data[:8] == PNG_SIGNATURE
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks.append((kind, payload))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    return chunks


def png_text(chunks) -> dict[str, str]:
    out = {}
    for kind, payload in chunks:
        if kind == b"tEXt":
            key, _, value = payload.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = payload.partition(b"\0")
            out[key.decode()] = rest[2:].split(b"\0", 2)[2].decode()
    return out


def test_plot_several_runs_overlaid(run_script, runs, tmp_path):
    target = tmp_path / "val_loss.png"
    res = run_script(
        "get_metric_history", "--run-id", runs["a"], runs["b"], "--metrics", "val_loss", "--plot", str(target)
    )
    assert res.code == 0, res.both
    assert f"Plot: {target.resolve()}" in res.out
    data = target.read_bytes()
    assert 5_000 < len(data) < 2_000_000
    chunks = png_chunks(data)
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert (width, height) == (1000, 320)  # one panel: 10 x 3.2 inches at 100 dpi
    from PIL import Image

    with Image.open(target) as img:
        img.load()  # decodes every pixel
        assert img.size == (1000, 320) and len(img.getcolors(maxcolors=1 << 20)) > 10  # something was drawn
    labels = png_text(chunks)["Description"].splitlines()
    a, b = 1 / (np.arange(200) + 1), 2 / (np.arange(200) + 1)
    assert f"val_loss: a: max {a.max():g} @{int(a.argmax())} (exact)" in labels
    assert f"val_loss: a: min {a.min():g} @{int(a.argmin())} (exact)" in labels
    assert f"val_loss: b: max {b.max():g} @{int(b.argmax())} (exact)" in labels
    assert f"val_loss: b: min {b.min():g} @{int(b.argmin())} (exact)" in labels

    as_json = run_script(
        "get_metric_history",
        "--run-id",
        runs["a"],
        "--metrics",
        "val_loss",
        "--plot",
        str(target),
        "--force",
        "--format",
        "json",
    )
    assert as_json.code == 0, as_json.both
    assert json.loads(as_json.out)["plot"] == str(target.resolve())


def test_plot_labels_sample_extremes_as_such(run_script, runs, tmp_path):
    target = tmp_path / "stuck.png"
    res = run_script("get_metric_history", "--run-id", runs["stuck"], "--metrics", "m", "--plot", str(target))
    assert res.code == 0, res.both
    labels = png_text(png_chunks(target.read_bytes()))["Description"].splitlines()
    assert any(
        line.startswith("m: stuck: sample max ") and line.endswith("(of 2,500 sampled points)") for line in labels
    )
    assert not any("(exact)" in line for line in labels)


def test_plot_bad_targets(run_script, runs, tmp_path):
    existing = tmp_path / "old.png"
    existing.write_bytes(b"old")
    res = run_script("get_metric_history", "--run-id", runs["a"], "--plot", str(existing))
    assert res.code == 2 and "--force" in res.err and "Traceback" not in res.err
    assert existing.read_bytes() == b"old"
    res = run_script("get_metric_history", "--run-id", runs["a"], "--plot", str(tmp_path / "x.jpg"))
    assert res.code == 2 and ".png" in res.err
    res = run_script("get_metric_history", "--run-id", runs["a"], "--plot", str(tmp_path / "nowhere" / "x.png"))
    assert res.code == 2 and "does not exist" in res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png"]


PROBE = """
import json, sys
sys.path.insert(0, {scripts!r})
import get_metric_history as g
code = g.main(sys.argv[1:])
loaded = {{name: name in sys.modules for name in ("matplotlib", "mlflow")}}
sys.stderr.write("PROBE " + json.dumps({{"code": code, **loaded}}) + "\\n")
"""


def probe(server, empty_env_dir, *args: str) -> dict:
    env = clean_env({"MLFLOW_TRACKING_URI": server.uri}, env_dir=empty_env_dir)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(scripts=str(SCRIPTS)), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    line = next(x for x in proc.stderr.splitlines() if x.startswith("PROBE "))
    return json.loads(line[len("PROBE ") :])


def test_matplotlib_only_with_plot(server, empty_env_dir, runs, tmp_path):
    for fmt in ("markdown", "json", "csv"):
        got = probe(server, empty_env_dir, "--run-id", runs["a"], "--metrics", "val_loss", "--format", fmt)
        assert got == {"code": 0, "matplotlib": False, "mlflow": False}
    got = probe(
        server, empty_env_dir, "--run-id", runs["a"], "--metrics", "val_loss", "--plot", str(tmp_path / "p.png")
    )
    assert got["code"] == 0 and got["matplotlib"] is True  # the check above can fail
