"""`reconcile` command line: thin staged wrapper around the pure core.

load+validate -> (observe) -> plan -> show -> (apply). Results go to stdout,
errors and logs to stderr. Exit codes: 0 ok / no changes, 1 error,
2 changes present (with --detailed-exitcode) or drift (`status`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from reconciler.cli.colour import disable_colour, write_text
from reconciler.cli.output_files import write_output
from reconciler.cli.plan_revision import with_local_revision
from reconciler.cli.planning import plan_with_digest
from reconciler.cli.validate_report import render_github as validate_github
from reconciler.cli.validate_report import render_json as validate_json
from reconciler.cli.validate_report import validate_file
from reconciler.common.diagnostics import Diagnostic
from reconciler.common.errors import ReconcilerError, SpecError
from reconciler.common.logging_setup import scrub_text
from reconciler.common.private_files import output_problem
from reconciler.observe.snapshot_io import load_snapshot
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Plan
from reconciler.plan.render import render_json, render_markdown, render_text
from reconciler.plan.saved import save_plan
from reconciler.spec.certificate_rules import certificate_sets, node_held_keys
from reconciler.spec.discovery import discover_specs
from reconciler.spec.loader import LoadedSpec, load_spec
from reconciler.spec.schema import spec_json_schema_text

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


DEBUG_ENV = "RECONCILE_DEBUG"
NO_COLOR_HELP = "no colour on a terminal (also NO_COLOR=1); colour is never used in a pipe"


def _version() -> str:
    try:
        return importlib.metadata.version("cms-cluster-reconciler")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


class UsageError(ReconcilerError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that exits 1 (not 2: 2 means "changes present") on bad flags."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_ERROR)


def _print_diagnostics(diagnostics: Sequence[object]) -> None:
    for d in diagnostics:
        text = d.render() if isinstance(d, Diagnostic) else str(d)
        write_text(sys.stderr, text + "\n")


def _load(path: Path) -> LoadedSpec:
    loaded = load_spec(path)
    _print_diagnostics(loaded.warnings)
    return loaded


# ----------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    specs = discover_specs(args.specs)
    if not specs:
        raise UsageError("no spec files found in " + ", ".join(map(str, args.specs)))
    if args.format != "text":
        results = [validate_file(path) for path in specs]
        render = validate_json if args.format == "json" else validate_github
        sys.stdout.write(render(results))
        return EXIT_OK if all(r.valid for r in results) else EXIT_ERROR
    failed = 0
    for path in specs:
        try:
            loaded = _load(path)
        except SpecError as exc:
            failed += 1
            _print_diagnostics(exc.diagnostics or (str(exc),))
            write_text(sys.stderr, f"INVALID {path}\n")
            continue
        spec = loaded.spec
        warn = f", {len(loaded.warnings)} warning(s)" if loaded.warnings else ""
        held = sum(len(node_held_keys(p, c)) for p, c in certificate_sets(spec))
        on_nodes = (
            f"; {held} key(s) live on the nodes: their certificates' CN, CA and dates were "
            "checked, whether each key matches is checked by its node"
            if held
            else ""
        )
        write_text(
            sys.stdout,
            f"OK {path}: cluster {spec.cluster}, {len(spec.database_nodes)} database node(s), "
            f"{len(spec.nodes) - len(spec.database_nodes)} client node(s), "
            f"master {spec.master}{warn}{on_nodes}\n",
        )
    return EXIT_ERROR if failed else EXIT_OK


# --------------------------------------------------------------------- plan
def _snapshot_for(loaded: LoadedSpec, observed_arg: Path, several: bool) -> Path:
    if observed_arg.is_dir():
        candidate = observed_arg / f"{loaded.spec.cluster}.yaml"
        if not candidate.exists():
            raise UsageError(f"no snapshot {candidate} for cluster {loaded.spec.cluster}")
        return candidate
    if several:
        raise UsageError("--observed must be a directory (<cluster>.yaml) with several specs")
    return observed_arg


def _observe_all(loaded: list[LoadedSpec], args: argparse.Namespace) -> list[Observed]:
    """Snapshots offline; live, every cluster is observed at the same time (each cluster's
    nodes concurrently too)."""
    several = len(loaded) > 1
    if args.observed is not None:
        return [load_snapshot(_snapshot_for(one, args.observed, several)) for one in loaded]
    from reconciler.cli.live_observation import observe_for_plan

    async def observe_every_cluster() -> list[Observed]:
        return list(await asyncio.gather(*(observe_for_plan(one, args) for one in loaded)))

    return asyncio.run(observe_every_cluster())


def _markdown(plans: list[Plan], loaded: list[LoadedSpec], args: argparse.Namespace) -> str:
    if args.base is None:
        return render_markdown(plans)
    from reconciler.cli.spec_base import compare_with_base

    base = compare_with_base(loaded, args.specs, args.base)
    return render_markdown(plans, base.changes, base=args.base, removed=base.removed)


def cmd_plan(args: argparse.Namespace) -> int:
    specs = discover_specs(args.specs)
    if not specs:
        raise UsageError("no spec files found in " + ", ".join(map(str, args.specs)))
    if args.base is not None and args.format != "markdown":
        raise UsageError("--base is for --format markdown (a pull request's comment)")
    if args.out is not None and len(specs) != 1:
        raise UsageError("--out saves the plan of exactly one spec")
    if args.out is not None and (problem := output_problem(args.out)) is not None:
        raise UsageError(f"--out {args.out}: {problem}")
    loaded = [_load(path) for path in specs]  # every spec valid before any node is touched
    observed = _observe_all(loaded, args)
    plans = [
        with_local_revision(plan_with_digest(one, obs), one)
        for one, obs in zip(loaded, observed, strict=True)
    ]
    if args.out is not None:
        write_output(args.out, "--out", save_plan(plans[0], loaded[0].path))
        sys.stderr.write(f"saved plan to {args.out}\n")
    if args.format == "json":
        sys.stdout.write(render_json(plans))
    elif args.format == "markdown":
        sys.stdout.write(_markdown(plans, loaded, args))
    else:
        write_text(sys.stdout, "\n".join(render_text(p) for p in plans))
    if args.detailed_exitcode and any(p.changes_present or p.drift for p in plans):
        return EXIT_CHANGES
    return EXIT_OK


# ------------------------------------------------------------------- schema
def cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(spec_json_schema_text())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    # Imported here so that importing reconciler.cli (offline helpers) does not load asyncssh.
    from reconciler.cli import arguments as cli_arguments
    from reconciler.cli import certs_request as cli_certs
    from reconciler.cli import import_command as cli_import
    from reconciler.cli import live as cli_live
    from reconciler.cli import recover as cli_recover
    from reconciler.cli import watch as cli_watch

    parser = _Parser(
        prog="reconcile",
        description="Declarative, GitOps reconciliation of Cisco Meeting Server database clusters.",
        epilog="Exit codes: 0 ok/no changes, 1 error, 2 changes present (--detailed-exitcode).",
    )
    parser.add_argument("--version", action="version", version=f"reconcile {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an unexpected error (also {DEBUG_ENV}=1)",
    )
    parser.add_argument("--no-color", action="store_true", help=NO_COLOR_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", help="check spec files (syntax, rules, certificates)")
    p.add_argument("specs", nargs="+", type=Path, metavar="SPEC_OR_DIR")
    p.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text (default); json: every diagnostic, schemas/validate-output.schema.json; "
        "github: workflow-command annotations on the lines",
    )
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("plan", help="show what apply would do (offline with --observed)")
    p.add_argument("specs", nargs="+", type=Path, metavar="SPEC_OR_DIR")
    p.add_argument(
        "--observed",
        type=Path,
        metavar="SNAPSHOT",
        help="plan offline against a captured snapshot (a directory: <cluster>.yaml per spec)",
    )
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    p.add_argument("--out", type=Path, metavar="PLAN_JSON", help="save the plan for apply")
    p.add_argument(
        "--base",
        metavar="REF",
        help="with --format markdown: say above each plan what the change since REF (a git "
        "commit, branch or tag of the checkout the specs are in) does to the spec",
    )
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when the cluster matches the spec, 2 when it differs (steps planned or "
        "drift held back), 1 on error",
    )
    cli_arguments.add_live_plan_arguments(p)
    p.set_defaults(handler=cmd_plan)

    p = sub.add_parser("schema", help="print the JSON Schema of the spec")
    p.set_defaults(handler=cmd_schema)

    cli_live.register(sub)
    cli_recover.register(sub)
    cli_certs.register(sub)
    cli_watch.register(sub)
    cli_import.register(sub)
    for command in sub.choices.values():  # after the command too, as `terraform plan -no-color`
        command.add_argument(
            "--no-color", action="store_true", default=argparse.SUPPRESS, help=NO_COLOR_HELP
        )
    return parser


def _os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename else reason


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_color:
        disable_colour()
    debug = bool(args.debug) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return _run(args)
    except OSError as exc:
        # One error boundary: what the commands did not turn into a message themselves.
        if debug:
            raise
        write_text(sys.stderr, f"error: {scrub_text(_os_error(exc))}\n")
        return EXIT_ERROR
    except Exception as exc:
        if debug:
            raise
        write_text(
            sys.stderr,
            f"error: internal error ({type(exc).__name__}): {scrub_text(str(exc))}; "
            f"run with --debug (or {DEBUG_ENV}=1) to see where\n",
        )
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    try:
        code: int = args.handler(args)
    except SpecError as exc:
        _print_diagnostics(exc.diagnostics or (f"error: {exc}",))
        # str(exc) repeats the diagnostics after its first line (a summary), or is the one
        # diagnostic itself (a file that cannot be read or parsed): say each thing once.
        first = str(exc).splitlines()[0] if str(exc) else ""
        shown = {d.render() for d in exc.diagnostics if isinstance(d, Diagnostic)}
        if exc.diagnostics and first not in shown:
            write_text(sys.stderr, f"error: {first}\n")
        return EXIT_ERROR
    except ReconcilerError as exc:
        write_text(sys.stderr, f"error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        write_text(sys.stderr, "interrupted\n")
        return 130
    return code


def run() -> NoReturn:
    raise SystemExit(main())
