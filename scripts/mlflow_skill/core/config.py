"""Where the tracking store and its credentials come from. The only module that reads os.environ.

The precedence of the sources is the table in references/credentials.md ("Where the settings
come from"); `resolve_settings` applies it: the --tracking-uri flag, the process environment, .env.local
and .env in the working directory, then in the skill's folder (or the one MLFLOW_SKILL_ENV_DIR
names), then MLflow's embedded store.

The URI and its credentials are taken *together*: the first source that names a server
(MLFLOW_TRACKING_URI, or MLFLOW_HOST[/PORT/SCHEME]) also supplies the username, password or
token, so credentials from one source are never sent to a server named by another. Within a
source MLFLOW_TRACKING_URI beats MLFLOW_HOST, and MLFLOW_TRACKING_USERNAME/PASSWORD beat
MLFLOW_USERNAME/PASSWORD. Other settings (timeout, TLS, retries, auth plugin) are read from the
first source that sets them.

Nothing here writes to os.environ: every script gets one immutable Settings that records where
each value came from, so errors can name the setting and its source.
"""

from __future__ import annotations

import math
import os
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.secrets import (
    is_secret_query_key,
    masked_query,
    redact_store_uri,
    split_uri,
)

SKILL_ROOT = Path(__file__).resolve().parents[3]  # scripts/mlflow_skill/core/config.py -> the skill folder


DOTENV_NAMES = (".env.local", ".env")


EMBEDDED_SOURCE = "embedded default, nothing configured"


FLAG_SOURCE = "--tracking-uri"


DEFAULT_TIMEOUT = 30.0


DEFAULT_RETRIES = 2


DEFAULT_MAX_ANSWER_MB = 256.0  # the decoded size of one answer a script accepts (MiB)


SECRET_VARS = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
)


@dataclass(frozen=True)
class Layer:
    name: str  # "environment", ".env.local (/abs/folder)", ...
    values: Mapping[str, str]
    path: Path | None = None  # the file, for .env layers

    def fix(self, names: str) -> str:
        """How to change `names` in this source, for error messages."""
        if self.path is not None:
            return f"edit {names} in {self.path}"
        return f"fix {names} in the environment, where it is set (shell export, `doppler secrets set`, mise [env])"

    def beside(self) -> str:
        return f"in {self.path}" if self.path is not None else "in the environment"

    def get(self, var: str) -> str | None:
        value = self.values.get(var)
        return value if value not in (None, "") else None


def env_folders(environ: Mapping[str, str], cwd: Path) -> list[tuple[Path, str]]:
    """(folder, how to name it) searched for .env.local/.env: MLFLOW_SKILL_ENV_DIR alone if set,
    else the working directory (where a user's project keeps its secrets) then the skill's folder."""
    override = environ.get("MLFLOW_SKILL_ENV_DIR")
    if override:
        return [(Path(override).expanduser().resolve(), "MLFLOW_SKILL_ENV_DIR folder")]
    folders = [(cwd.resolve(), "working directory")]
    if SKILL_ROOT != cwd.resolve():
        folders.append((SKILL_ROOT, "skill folder"))
    return folders


def dotenv_layers(folders: list[tuple[Path, str]]) -> list[Layer]:
    layers = []
    for folder, label in folders:
        for name in DOTENV_NAMES:
            path = folder / name
            if path.is_file():
                layers.append(Layer(f"{name} in the {label} {folder}", read_dotenv(path), path))
    return layers


def read_dotenv(path: Path) -> dict[str, str]:
    """A .env file's values through python-dotenv's parser, read as UTF-8 (a file that is not
    is refused naming it). ${VAR} references are resolved here, in one pass: dotenv's own pass
    copies every earlier value once per line (50,000 lines took 40 s)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): save it as UTF-8, "
            "or move it out of the way"
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot read {path} ({exc.strerror}): fix its permissions, or move it out of the way"
        ) from None
    import io

    from dotenv import dotenv_values  # only when such a file exists
    from dotenv.variables import parse_variables

    values: dict[str, str] = {}
    environ = ChainMap(values, os.environ)  # dotenv's order: the file's earlier values, then the process's
    for key, value in dotenv_values(stream=io.StringIO(text), interpolate=False).items():
        if value is not None:
            values[key] = "".join(atom.resolve(environ) for atom in parse_variables(value)) if "${" in value else value
    return values


@dataclass(frozen=True)
class Settings:
    tracking_uri: str  # without credentials or query: scheme://host[:port][/prefix], or a store URI
    source: str  # where the URI came from, e.g. "MLFLOW_TRACKING_URI from environment"
    username: str | None = None
    password: str | None = None
    token: str | None = None
    credential_source: str | None = None  # e.g. "MLFLOW_TRACKING_USERNAME/PASSWORD from .env.local (...)"
    unused_credentials: str | None = None  # credentials set in a source other than the URI's: not sent
    uri_fix: str = "fix the URI"  # how to change the URI in the place it came from
    credentials_fix: str = ""  # how to fix the credentials in the place they came from (or belong)
    query_params: tuple[tuple[str, str], ...] = ()  # sent with every request (e.g. a proxy's access_token)
    insecure_tls: bool = False
    server_cert_path: str | None = None
    client_cert_path: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    max_answer_mb: float = DEFAULT_MAX_ANSWER_MB  # MLFLOW_SKILL_MAX_ANSWER_MB: a bigger answer is refused
    embedded: bool = False
    auth_plugin: str | None = None  # MLFLOW_TRACKING_AUTH
    aws_sigv4: bool = False
    allow_file_store: bool = False
    experiment_id: str | None = None  # MLFLOW_EXPERIMENT_ID: default experiment where a script takes one
    experiment_name: str | None = None  # MLFLOW_EXPERIMENT_NAME
    read_only: bool = False  # MLFLOW_SKILL_READ_ONLY: every write refuses (exit 8) before anything is sent
    secrets: tuple[str, ...] = field(default=(), repr=False)
    origins: Mapping[str, str] = field(default_factory=dict)  # setting -> where it came from

    @property
    def scheme(self) -> str:
        return self.tracking_uri.split(":", 1)[0].lower() if ":" in self.tracking_uri else ""

    @property
    def is_http(self) -> bool:
        return self.scheme in ("http", "https")

    @property
    def display_uri(self) -> str:
        if not self.is_http:
            return redact_store_uri(self.tracking_uri)
        return self.tracking_uri + masked_query(self.query_params)  # every value masked, sent unchanged

    def store_line(self) -> str:
        return f"store: {self.display_uri} ({self.source})" + (", read-only" if self.read_only else "")

    def origin(self, setting: str) -> str:
        return self.origins.get(setting, "not set")

    def credentials_hint(self) -> str:
        """What was sent and where it came from, for 401 messages."""
        if self.token:
            return f"a bearer token was sent ({self.credential_source})"
        if self.username or self.password:
            return f"user {self.username!r} was sent ({self.credential_source})"
        if self.unused_credentials:
            return f"no credentials were sent ({self.unused_credentials}, a different source than the URI's)"
        return "no credentials were sent"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _number(text: str, name: str, where: str, kind: type) -> float:
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} ({where}) is not a number: fix or unset it") from None


def compose_atomic_uri(layer: Layer) -> str:
    """MLFLOW_HOST (may carry a scheme) + MLFLOW_PORT + MLFLOW_SCHEME -> tracking URI."""
    host = (layer.get("MLFLOW_HOST") or "").strip().rstrip("/")
    scheme = (layer.get("MLFLOW_SCHEME") or "").strip().lower()
    if "://" in host:
        scheme_in_host, host = host.split("://", 1)
        scheme = scheme or scheme_in_host.lower()
    port = (layer.get("MLFLOW_PORT") or "").strip()
    if not scheme:
        scheme = "https" if port == "443" else "http"
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def embedded_store_uri(cwd: Path) -> str:
    """MLflow's own default: ./mlruns when it already holds experiments (old file store), else
    sqlite:///mlflow.db in the working directory (MLflow >= 3.7); shown as an absolute path."""
    mlruns = cwd / "mlruns"
    if mlruns.is_dir() and any(p.name.isdigit() and (p / "meta.yaml").exists() for p in mlruns.iterdir()):
        return "file:" + str(mlruns.resolve())
    return "sqlite:///" + str((cwd / "mlflow.db").resolve())


def _layer_credentials(layer: Layer) -> tuple[str | None, str | None, str | None, str | None]:
    """(username, password, token, description) that one source supplies."""
    user = layer.get("MLFLOW_TRACKING_USERNAME") or layer.get("MLFLOW_USERNAME")
    password = layer.get("MLFLOW_TRACKING_PASSWORD") or layer.get("MLFLOW_PASSWORD")
    token = layer.get("MLFLOW_TRACKING_TOKEN")
    names = []
    if layer.get("MLFLOW_TRACKING_USERNAME") or layer.get("MLFLOW_TRACKING_PASSWORD"):
        names.append("MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    elif user or password:
        names.append("MLFLOW_USERNAME and MLFLOW_PASSWORD")
    if token:
        names.append("MLFLOW_TRACKING_TOKEN")
    desc = f"{' and '.join(names)} from {layer.name}" if names else None
    return user, password, token, desc


def _uri_in(layer: Layer) -> tuple[str, str] | None:
    if layer.get("MLFLOW_TRACKING_URI"):
        return layer.get("MLFLOW_TRACKING_URI").strip(), f"MLFLOW_TRACKING_URI from {layer.name}"
    if layer.get("MLFLOW_HOST"):
        return compose_atomic_uri(layer), f"MLFLOW_HOST/MLFLOW_PORT from {layer.name}"
    return None


def _uri_fix(source: str, layer: Layer | None) -> str:
    if source == FLAG_SOURCE:
        return "pass a corrected --tracking-uri"
    if layer is None:
        return "set MLFLOW_TRACKING_URI (environment or .env.local) to use a server"
    return layer.fix("MLFLOW_TRACKING_URI" if source.startswith("MLFLOW_TRACKING_URI") else "MLFLOW_HOST/MLFLOW_PORT")


def _credentials_fix(cred_layer: Layer | None, cred_source: str | None, unused: str | None) -> str:
    """How to fix a 401 in the place the credentials came from, or where they belong."""
    if cred_source and cred_layer is not None:
        names = cred_source.split(" from ", 1)[0]
        return cred_layer.fix(names)
    place = cred_layer.beside() if cred_layer is not None else "in the environment"
    wanted = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
    if unused:
        return (
            f"credentials are sent only with the URI of the same source: set {wanted} {place} beside the URI, "
            "or put the URI where the credentials are"
        )
    return f"set {wanted} {place}, beside the URI"


def resolve_settings(
    flag_uri: str | None = None,
    timeout: float | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Apply the precedence table above; `environ` and `cwd` default to this process's."""
    environ = dict(os.environ if environ is None else environ)
    cwd = Path.cwd() if cwd is None else cwd
    layers = [Layer("environment", environ), *dotenv_layers(env_folders(environ, cwd))]
    store = _store_settings(flag_uri, layers, cwd)
    origins: dict[str, str] = {"tracking_uri": store["source"]}
    if store["credential_source"]:
        origins["credentials"] = store["credential_source"]
    secrets = [layer.get(v) for layer in layers for v in SECRET_VARS if layer.get(v)] + store.pop("uri_secrets")
    secrets += [s for s in (store["password"], store["token"]) if s]
    return Settings(
        **store,
        **_transport_settings(layers, timeout, origins),
        secrets=tuple(dict.fromkeys(s for s in secrets if s)),
        origins=origins,
    )


def _store_settings(flag_uri: str | None, layers: list[Layer], cwd: Path) -> dict:
    """The store URI, where it came from, and the credentials that travel with it."""
    uri_layer: Layer | None = None
    if flag_uri:
        uri, source = flag_uri.strip(), FLAG_SOURCE
        cred_layer: Layer | None = layers[0]  # typed in this shell: the shell's credentials go with it
    else:
        found = next(((layer, _uri_in(layer)) for layer in layers if _uri_in(layer)), None)
        if found:
            uri_layer, (uri, source) = found
        else:
            uri, source = embedded_store_uri(cwd), EMBEDDED_SOURCE
        cred_layer = uri_layer
    embedded = source == EMBEDDED_SOURCE
    username = password = token = cred_source = None
    if cred_layer is not None and not embedded:
        username, password, token, cred_source = _layer_credentials(cred_layer)
    uri_fix = _uri_fix(source, uri_layer)
    query: tuple[tuple[str, str], ...] = ()
    uri_secrets: list[str] = []
    parts = split_uri(uri)
    in_uri = bool(parts and parts.scheme in ("http", "https") and (parts.username or parts.password))
    if parts and parts.scheme in ("http", "https"):
        if in_uri:
            username, password, token = parts.username, parts.password, None
            cred_source = f"the URI's user:password@ ({source})"
        uri_secrets = [v for k, v in parts.query if is_secret_query_key(k) and v]
        query, uri = parts.query, parts.base
    elif parts:  # database URIs: kept whole for the driver, shown as user:***@ (Settings.display_uri)
        uri_secrets = [parts.password or ""] + [v for k, v in parts.query if is_secret_query_key(k)]
    unused = None
    if not embedded and not (username or password or token):
        unused = next(
            (d for layer in layers if layer is not cred_layer for d in [_layer_credentials(layer)[3]] if d), None
        )
    cred_fix = (
        f"fix the user:password@ in the URI: {uri_fix}" if in_uri else _credentials_fix(cred_layer, cred_source, unused)
    )
    return {
        "tracking_uri": uri,
        "source": source,
        "embedded": embedded,
        "query_params": query,
        "uri_secrets": uri_secrets,
        "username": username or None,
        "password": password or None,
        "token": token or None,
        "credential_source": cred_source,
        "unused_credentials": unused,
        "uri_fix": uri_fix,
        "credentials_fix": cred_fix,
    }


def _transport_settings(layers: list[Layer], timeout: float | None, origins: dict[str, str]) -> dict:
    """Everything but the store and its credentials: each from the first source that sets it."""

    def first(var: str) -> tuple[str | None, str]:
        for layer in layers:
            if layer.get(var) is not None:
                return layer.get(var), f"{var} from {layer.name}"
        return None, "not set"

    timeout_text, origins["timeout"] = first("MLFLOW_HTTP_REQUEST_TIMEOUT")
    if timeout is not None:
        origins["timeout"] = "--timeout"
    elif timeout_text:
        timeout = _number(timeout_text, "MLFLOW_HTTP_REQUEST_TIMEOUT", origins["timeout"], float)
    else:
        timeout = DEFAULT_TIMEOUT
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout:g} ({origins['timeout']})")
    retries_text, origins["retries"] = first("MLFLOW_SKILL_HTTP_RETRIES")
    retries = DEFAULT_RETRIES
    if retries_text:
        retries = int(_number(retries_text, "MLFLOW_SKILL_HTTP_RETRIES", origins["retries"], int))
        if retries < 0:
            raise UsageError(
                f"MLFLOW_SKILL_HTTP_RETRIES must be 0 or more, got {retries_text!r} ({origins['retries']})"
            )
    cap_text, origins["max_answer_mb"] = first("MLFLOW_SKILL_MAX_ANSWER_MB")
    max_answer_mb = DEFAULT_MAX_ANSWER_MB
    if cap_text:
        max_answer_mb = _number(cap_text, "MLFLOW_SKILL_MAX_ANSWER_MB", origins["max_answer_mb"], float)
        if not (math.isfinite(max_answer_mb) and max_answer_mb > 0):
            raise UsageError(
                f"MLFLOW_SKILL_MAX_ANSWER_MB must be a positive number of MiB, got {cap_text!r} "
                f"({origins['max_answer_mb']})"
            )
    values = {
        var: first(var)
        for var in (
            "MLFLOW_TRACKING_INSECURE_TLS",
            "MLFLOW_TRACKING_SERVER_CERT_PATH",
            "MLFLOW_TRACKING_CLIENT_CERT_PATH",
            "MLFLOW_TRACKING_AUTH",
            "MLFLOW_TRACKING_AWS_SIGV4",
            "MLFLOW_ALLOW_FILE_STORE",
            "MLFLOW_EXPERIMENT_ID",
            "MLFLOW_EXPERIMENT_NAME",
            "MLFLOW_SKILL_READ_ONLY",
        )
    }
    for var, (value, where) in values.items():
        if value is not None:
            origins[var] = where
    return {
        "insecure_tls": _truthy(values["MLFLOW_TRACKING_INSECURE_TLS"][0]),
        "server_cert_path": values["MLFLOW_TRACKING_SERVER_CERT_PATH"][0],
        "client_cert_path": values["MLFLOW_TRACKING_CLIENT_CERT_PATH"][0],
        "timeout": float(timeout),
        "retries": retries,
        "max_answer_mb": max_answer_mb,
        "auth_plugin": values["MLFLOW_TRACKING_AUTH"][0],
        "aws_sigv4": _truthy(values["MLFLOW_TRACKING_AWS_SIGV4"][0]),
        "allow_file_store": _truthy(values["MLFLOW_ALLOW_FILE_STORE"][0]),
        "experiment_id": values["MLFLOW_EXPERIMENT_ID"][0],
        "experiment_name": values["MLFLOW_EXPERIMENT_NAME"][0],
        "read_only": _truthy(values["MLFLOW_SKILL_READ_ONLY"][0]),
    }
