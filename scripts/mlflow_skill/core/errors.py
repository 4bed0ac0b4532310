"""Errors with a one-line message that names the fix, and the exit codes they map to."""

from __future__ import annotations

EXIT_OK = 0


EXIT_ERROR = 1  # unexpected failure (a bug): run again with --debug


EXIT_USAGE = 2  # bad arguments, bad filter, bad input data


EXIT_NOT_FOUND = 3  # unknown experiment, run, metric, trace


EXIT_CONNECTION = 4  # server unreachable or too slow


EXIT_AUTH = 5  # 401 wrong/missing credentials, 403 missing permission


EXIT_SERVER = 6  # the server failed (5xx) or answered something unexpected


EXIT_ANOMALY = 7  # get_metric_history.py --follow --fail-on-anomaly: an anomaly in a followed run


EXIT_REFUSED = 8  # refused: read-only mode (MLFLOW_SKILL_READ_ONLY), or a promotion gate not met


EXIT_SERVER_TOO_OLD = 9  # the tracking server's MLflow lacks the feature (e.g. MLflow 2.x and traces)


EXIT_BUSY = 10  # another process is writing the same run right now: wait for it and re-run


EXIT_CODES_HELP = (
    "exit codes: 0 ok, 2 usage or bad input, 3 not found, 4 cannot reach the server, "
    "5 authentication or permission, 6 server error, 7 anomaly while following a run, "
    "8 refused (read-only mode or a promotion gate), 9 the server's MLflow is too old for the feature, "
    "10 busy (another process writes the same run now), "
    "1 unexpected (rerun with --debug)"
)


class SkillError(Exception):
    """An error with a one-line message that names the fix, and its exit code."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(SkillError):
    exit_code = EXIT_USAGE


class NotFoundError(SkillError):
    exit_code = EXIT_NOT_FOUND


class ConnectionFailure(SkillError):
    exit_code = EXIT_CONNECTION


class AuthError(SkillError):
    exit_code = EXIT_AUTH


class ServerError(SkillError):
    exit_code = EXIT_SERVER


class AnomalyFound(SkillError):
    """--follow --fail-on-anomaly: the first anomaly in a followed run (NaN, divergence, ...)."""

    exit_code = EXIT_ANOMALY


class RefusedError(SkillError):
    """A write refused on purpose, before anything was sent: read-only mode, or a promotion gate."""

    exit_code = EXIT_REFUSED


class ServerTooOld(SkillError):
    """The tracking server speaks MLflow, but a version without the feature asked for."""

    exit_code = EXIT_SERVER_TOO_OLD


class BusyError(SkillError):
    """Another process is writing the very same thing right now (two identical commands started
    together): not a bug; waiting for it and re-running settles it."""

    exit_code = EXIT_BUSY
