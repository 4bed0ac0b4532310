"""A tracking server behind TLS (a self-signed certificate for 127.0.0.1, tests/tls.py): a TLS
proxy (tests/faultproxy.py) in front of the real `server` fixture, and a hostile HTTPS server.
Untrusted certificates are one line naming the fix; a CA bundle or insecure mode works for reads,
writes and artifact uploads, even where REQUESTS_CA_BUNDLE names another bundle (as on machines
with a corporate CA: `requests` lets it override a session's own setting); --timeout bounds an
HTTPS answer whose headers never end."""

from __future__ import annotations

import time

import pytest

from hostile import API, Hostile, trickle_headers
from tls import self_signed

from conftest import unique
from faultproxy import FaultProxy
from reliability import assert_clean_error, write_returns_csv


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


def public_bundles() -> dict[str, str]:
    """The variables `requests` reads for its CA bundle, set to the public bundle (not ours)."""
    import certifi

    return {"REQUESTS_CA_BUNDLE": certifi.where(), "CURL_CA_BUNDLE": certifi.where()}


@pytest.fixture(scope="module")
def tls_proxy(server, certificate):
    proxy = FaultProxy(server.uri, tls=certificate)
    yield proxy
    proxy.close()


def test_an_untrusted_certificate_is_one_line_naming_the_fix(run_script, tls_proxy):
    seen = len(tls_proxy.requests)
    res = run_script("query_experiments", "experiments", uri=tls_proxy.uri)
    assert_clean_error(res, 4, "TLS error talking to", "MLFLOW_TRACKING_SERVER_CERT_PATH")
    assert len(tls_proxy.requests) == seen  # refused at the handshake: nothing was sent


def test_the_servers_ca_bundle_makes_reads_and_writes_work(run_script, tls_proxy, certificate):
    env = {**public_bundles(), "MLFLOW_TRACKING_SERVER_CERT_PATH": str(certificate.cert)}
    name = unique("tls")
    made = run_script("create_experiment", "--name", name, uri=tls_proxy.uri, env=env)
    assert made.code == 0, made.err
    listed = run_script("query_experiments", "experiments", "--filter", f"name = '{name}'", uri=tls_proxy.uri, env=env)
    assert listed.code == 0, listed.err
    assert listed.out.startswith(f"store: {tls_proxy.uri} ")
    assert f"| {name} |" in listed.out
    assert any(path.endswith("/experiments/create") for _, path, _ in tls_proxy.requests)


def listed_experiment(run_script, client, uri: str, env: dict[str, str]):
    """`experiments` over TLS, filtered to one experiment made for the test: it must be listed."""
    name = unique("tls")
    client.create_experiment(name)
    res = run_script("query_experiments", "experiments", "--filter", f"name = '{name}'", uri=uri, env=env)
    assert res.code == 0, res.err
    assert f"| {name} |" in res.out


def test_insecure_mode_reaches_a_self_signed_server(run_script, client, tls_proxy):
    listed_experiment(run_script, client, tls_proxy.uri, {**public_bundles(), "MLFLOW_TRACKING_INSECURE_TLS": "true"})


def test_requests_own_bundle_variable_is_honoured_when_mlflows_is_not_set(run_script, client, tls_proxy, certificate):
    listed_experiment(run_script, client, tls_proxy.uri, {"REQUESTS_CA_BUNDLE": str(certificate.cert)})


def test_a_backtest_uploads_its_artifacts_over_tls(run_script, tls_proxy, certificate, tmp_path):
    """Proxied artifact serving through the TLS proxy: the run's files go up with PUTs over HTTPS."""
    env = {"MLFLOW_TRACKING_SERVER_CERT_PATH": str(certificate.cert)}
    returns = write_returns_csv(tmp_path / "r.csv")
    experiment = unique("tls-bt")
    res = run_script(
        "log_backtest",
        "--returns",
        str(returns),
        "--experiment",
        experiment,
        "--run-name",
        "tls",
        "--no-tearsheet",
        uri=tls_proxy.uri,
        env=env,
    )
    assert res.code == 0, res.err
    puts = [path for method, path, status in tls_proxy.requests if method == "PUT" and status == 200]
    assert any(path.endswith("backtest/returns.csv") for path in puts), puts
    listed = run_script("query_experiments", "runs", "--experiment", experiment, uri=tls_proxy.uri, env=env)
    assert listed.code == 0 and "| tls |" in listed.out, listed.err


def test_https_headers_that_never_end_stop_at_the_deadline(run_script, certificate):
    srv = Hostile({f"{API}/experiments/search": trickle_headers(0.2)}, tls=certificate)
    try:
        start = time.monotonic()
        res = run_script(
            "query_experiments",
            "experiments",
            "--timeout",
            "2",
            uri=srv.uri,
            env={"MLFLOW_TRACKING_SERVER_CERT_PATH": str(certificate.cert)},
        )
        elapsed = time.monotonic() - start
    finally:
        srv.close()
    assert_clean_error(res, 4, "no complete answer within 2s (the headers never ended)")
    assert elapsed < 4, elapsed
