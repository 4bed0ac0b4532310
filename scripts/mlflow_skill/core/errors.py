"""Errors with a one-line message that names the fix, and the exit codes they map to."""

from __future__ import annotations

EXIT_OK = 0


EXIT_ERROR = 1  # unexpected failure (a bug): run again with --debug


EXIT_USAGE = 2  # bad arguments, bad filter, bad input data


EXIT_NOT_FOUND = 3  # unknown experiment, run, metric, trace


EXIT_CONNECTION = 4  # server unreachable or too slow


EXIT_AUTH = 5  # 401 wrong/missing credentials, 403 missing permission


EXIT_SERVER = 6  # the server failed (5xx) or answered something unexpected


EXIT_CODES_HELP = (
    "exit codes: 0 ok, 2 usage or bad input, 3 not found, 4 cannot reach the server, "
    "5 authentication or permission, 6 server error, 1 unexpected (rerun with --debug)"
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
