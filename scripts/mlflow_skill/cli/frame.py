"""The command-line frame every script shares: parser building blocks, the Context a command
gets, run_main (one error line and an exit code for every failure), and emit(), the one
renderer that turns a View into markdown, JSON or CSV.

A command is fetch -> shape -> render: it fetches data from the store, shapes it into a View
(rows, notes, the JSON form, the next-page command) and hands that to ctx.emit(view).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from mlflow_skill.cli.view import View, render_csv, render_json, render_markdown
from mlflow_skill.core.config import Settings, resolve_settings
from mlflow_skill.core.errors import EXIT_CODES_HELP, EXIT_ERROR, EXIT_USAGE, SkillError, UsageError
from mlflow_skill.core.formatting import safe_block, truncate
from mlflow_skill.core.secrets import (
    ScrubbingStream,
    register_basic_auth,
    register_secret,
    scrub,
    uri_without_secrets,
)
from mlflow_skill.store.transport import Store, open_store


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the docstring's examples as written."""


COMMON_DESTS = ("tracking_uri", "timeout", "format", "debug")


def add_common_args(parser: argparse.ArgumentParser, formats: tuple[str, ...] = ("markdown", "json")) -> None:
    group = parser.add_argument_group("connection and output")
    group.add_argument("--tracking-uri", help="tracking store (default: environment, .env.local, or ./mlflow.db)")
    group.add_argument(
        "--timeout", type=float, default=None, help="seconds a request may take, its whole answer included (default 30)"
    )
    group.add_argument("--format", choices=formats, default="markdown", help="output format (default markdown)")
    group.add_argument("--debug", action="store_true", help="show tracebacks and HTTP details on errors")


def make_parser(
    doc: str, prog: str, formats: tuple[str, ...] = ("markdown", "json"), **kwargs
) -> argparse.ArgumentParser:
    """A parser whose description is the script's Usage docstring."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=HelpFormatter, epilog=EXIT_CODES_HELP, **kwargs
    )
    add_common_args(parser, formats)
    return parser


def add_subcommand(sub, name: str, handler: Callable, help_text: str, description: str, formats: tuple[str, ...]):
    """A subcommand that also takes the connection/output options (before or after its name)."""
    p = sub.add_parser(
        name, help=help_text, description=description, formatter_class=HelpFormatter, epilog=EXIT_CODES_HELP
    )
    add_common_args(p, formats)
    for action in p._actions:  # the main parser holds the defaults
        if action.dest in COMMON_DESTS:
            action.default = argparse.SUPPRESS
    p.set_defaults(handler=handler)
    return p


def add_run_ids(p: argparse.ArgumentParser, many: bool = False, help_text: str = "run id") -> None:
    """A run id as a positional or as --run-id (agents carry the flag over between scripts)."""
    if many:
        p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help=help_text)
        p.add_argument(
            "--run-id",
            dest="run_id_flags",
            action="append",
            default=[],
            metavar="RUN_ID",
            help="the same, as a flag; repeatable",
        )
    else:
        p.add_argument("run_id", nargs="?", metavar="RUN_ID", help=help_text)
        p.add_argument("--run-id", dest="run_id_flag", metavar="RUN_ID", help="the same, as a flag")


def run_ids(args: argparse.Namespace) -> list[str]:
    """The run ids given positionally and with --run-id, in order, without repeats."""
    ids = [*(getattr(args, "run_ids", None) or []), *(getattr(args, "run_id_flags", None) or [])]
    return list(dict.fromkeys(i.strip() for i in ids if i and i.strip()))


def one_run_id(args: argparse.Namespace) -> str:
    given = [x for x in (getattr(args, "run_id", None), getattr(args, "run_id_flag", None)) if x]
    if len(given) != 1 and not (len(given) == 2 and given[0] == given[1]):
        raise UsageError("pass one run id, as RUN_ID or --run-id RUN_ID")
    return given[0].strip()


def add_output_args(p: argparse.ArgumentParser, required: bool = False, what: str = "the full result") -> None:
    """--output FILE: write everything to the file (atomically) and print a summary."""
    p.add_argument(
        "--output", "-o", required=required, metavar="FILE", help=f"write {what} to FILE and print a summary"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing --output file")


def check_output_target(args: argparse.Namespace) -> None:
    """Fail before any work when --output could not be written: a file there without --force, a
    folder, a folder that is missing or not writable."""
    from mlflow_skill.core.files import check_writable

    target = getattr(args, "output", None)
    if target:
        check_writable(target, getattr(args, "force", False))


@dataclass
class Context:
    """What a command needs: its settings, a lazily opened store, and output helpers."""

    args: argparse.Namespace
    argv: list[str]
    script: str
    settings: Settings
    _store: Store | None = field(default=None, repr=False)
    emitted: bool = False

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings)
            self._store.on_slow = self.tell_waiting
        return self._store

    def tell_waiting(self, call: str) -> None:
        """One line on stderr, once, when a call has waited a few seconds (stdout stays clean)."""
        diag(
            f"waiting for {self.settings.display_uri} to answer {call} "
            f"(up to {self.settings.timeout:g}s; --timeout changes it)"
        )

    @property
    def fmt(self) -> str:
        return getattr(self.args, "format", "markdown") or "markdown"

    def header(self) -> str:
        return self.settings.store_line()

    def emit(self, view: View | str) -> None:
        """Print a result: markdown gets the store line first; json/csv stay parseable and the
        store line goes to stderr."""
        if isinstance(view, View):
            body = {"markdown": render_markdown, "json": render_json, "csv": render_csv}[self.fmt](view)
            if self.fmt == "csv" and view.next_command:
                diag(f"{view.more_label}; next page: {view.next_command}")
        else:
            body = view
        self.emitted = True
        if self.fmt == "markdown":  # for a terminal: store-supplied ANSI escapes shown, not obeyed
            sys.stdout.write(safe_block(self.header() + "\n\n" + body.rstrip("\n") + "\n"))
        else:
            diag(self.header())
            sys.stdout.write(body if body.endswith("\n") else body + "\n")

    def next_page(self, token: str | None) -> str | None:
        return next_page_command(self.argv, token, self.script) if token else None


def next_page_command(argv: list[str], token: str, script: str) -> str:
    """The exact command for the next page: this invocation with --page-token replaced, and no
    credentials in it (a re-run takes them from the same environment)."""
    args: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--page-token":
            skip = True
            continue
        if arg.startswith("--page-token="):
            continue
        if i and argv[i - 1] == "--tracking-uri":
            arg = uri_without_secrets(arg)
        elif arg.startswith("--tracking-uri="):
            arg = "--tracking-uri=" + uri_without_secrets(arg.split("=", 1)[1])
        args.append(arg)
    return shlex.join(["uv", "run", f"scripts/{script}", *args, "--page-token", token])


def diag(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")


def run_main(
    parser: argparse.ArgumentParser,
    command: Callable[[Context], int | None],
    argv: list[str] | None,
    script: str,
) -> int:
    """Parse, resolve settings, run, and turn every failure into one line and an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    real_err = sys.stderr
    sys.stderr = ScrubbingStream(real_err)  # diagnostics only: stdout carries data, never rewritten
    debug = "--debug" in argv
    ctx: Context | None = None
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
            return int(exc.code or 0)
        settings = resolve_settings(getattr(args, "tracking_uri", None), getattr(args, "timeout", None))
        for secret in settings.secrets:
            register_secret(secret)
        register_basic_auth(settings.username, settings.password)
        ctx = Context(args=args, argv=argv, script=script, settings=settings)
        return int(command(ctx) or 0)
    except SkillError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        if ctx is not None and not ctx.emitted and not isinstance(exc, UsageError):
            diag(ctx.header())  # where the failing request went, and where that setting came from
        diag(f"error: {scrub(str(exc))}")
        return exc.exit_code
    except KeyboardInterrupt:
        diag("error: interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line unless --debug; or a file the user named that cannot be used
        if debug:
            import traceback

            traceback.print_exc()
        if isinstance(exc, OSError) and exc.filename is not None:
            diag(
                f"error: cannot use {exc.filename} ({exc.strerror or type(exc).__name__}): check the path and its "
                "permissions, or name another file"
            )
            return EXIT_USAGE
        if ctx is not None and not ctx.emitted:
            diag(ctx.header())
        diag(
            f"error: unexpected {type(exc).__name__}: {truncate(scrub(str(exc)), 300)} (rerun with --debug for details)"
        )
        return EXIT_ERROR
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        sys.stderr = real_err
