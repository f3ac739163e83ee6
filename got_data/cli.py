"""The ``got-data`` command line. Every failure the user can fix is one line and a non-zero exit."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"got-data: error: {message}\n")


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _engine_help(name: str) -> str:
    from engines import UnknownEngine, get_engine

    try:
        cls = get_engine(name)
    except UnknownEngine as exc:
        return str(exc)
    lines = [f"engine {cls.name} (version {cls.version}): {cls.description}", f"inputs: {cls.inputs}", "parameters (--param KEY=VALUE):"]
    for p in cls.params:
        extra = f" one of {', '.join(map(str, p.choices))};" if p.choices else ""
        lines.append(f"  {p.name} ({p.type.__name__}, default {p.default!r}):{extra} {p.help}")
    if not cls.params:
        lines.append("  (none)")
    return "\n".join(lines)


def _add_build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("engine", help="engine name (see 'got-data engines')")
    p.add_argument("--n", type=int, default=1000, help="number of sample positions (default 1000)")
    p.add_argument("--out", default=None, help="dataset folder or fsspec URL (default data/ENGINE)")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole build (default 0)")
    p.add_argument("--shard-size", type=int, default=1000, help="positions per shard (default 1000)")
    p.add_argument("--workers", type=int, default=None, help="parallel workers (default: all cores; 0 = in this process)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset built with other settings")
    p.add_argument("--input", action="append", default=[], metavar="PATH", help="input file, folder or fsspec URL (repeatable)")
    p.add_argument("--param", action="append", default=[], type=_key_value, metavar="KEY=VALUE", help="engine setting (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="got-data", description="Data engines for GOT-OCR2.0-style OCR training data")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    build = sub.add_parser("build", help="build or resume a dataset", formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_build_args(build)

    sub.add_parser("engines", help="list engines and their parameters")

    validate = sub.add_parser("validate", help="re-check a dataset against its index, checksums and schema")
    validate.add_argument("dir")

    export = sub.add_parser("export", help="export a dataset (or a mixture) for a trainer")
    export.add_argument("dir", help="dataset folder, or a mixture index JSON")
    export.add_argument("--to", required=True, choices=["got", "swift", "parquet"])
    export.add_argument("dest")
    export.add_argument("--exclude-flagged", action="store_true", help="leave out samples flagged in the viewer")

    for name, text in (("run", "build every node of a dag.yaml in dependency order, then its mixtures"),
                       ("plan", "show what 'run' would build and what is already complete")):
        dag = sub.add_parser(name, help=text)
        dag.add_argument("dag", help="path to dag.yaml")
        dag.add_argument("--scale", type=float, default=1.0, help="multiply every node's count (default 1.0)")
        dag.add_argument("--only", action="append", default=[], metavar="NODE", help="this node and what it needs (repeatable)")
        if name == "run":
            dag.add_argument("--workers", type=int, default=None, help="parallel workers (default: all cores; 0 = in-process)")
            dag.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)")

    view = sub.add_parser("view", help="browse and flag samples in a local web viewer")
    view.add_argument("dir", help="dataset folder, or a folder of dataset folders")
    view.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    view.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    view.add_argument("--seed", type=int, default=0, help="seed of random sampling in the browser (default 0)")
    view.add_argument("--tokenizer", default=None, metavar="PATH", help="local tokenizer.json for token-length plots")
    view.add_argument("--no-open", action="store_true", help="do not open a web browser")
    return parser


def _build(args: argparse.Namespace) -> int:
    from got_data.build import BuildRequest, build

    request = BuildRequest(
        engine=args.engine,
        n=args.n,
        out=args.out or os.path.join("data", args.engine.replace(":", "_")),
        seed=args.seed,
        shard_size=args.shard_size,
        workers=args.workers,
        address=args.address,
        overwrite=args.overwrite,
        inputs=args.input,
        params=dict(args.param),
        progress=not args.quiet,
    )
    summary = build(request)
    reasons = ", ".join(f"{k}: {v}" for k, v in summary.errors_by_reason.items()) or "none"
    print(
        f"{summary.out}: built {summary.shards_built} shard(s), skipped {summary.shards_skipped} complete; "
        f"{summary.samples} samples, {summary.errors} errors ({reasons}) in {summary.seconds:.1f}s"
    )
    return 0


def _engines(_: argparse.Namespace) -> int:
    from engines import registry

    print("\n\n".join(_engine_help(name) for name in registry()))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from manifests.validate import validate_dataset

    report = validate_dataset(args.dir)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems[:50]:
        print(problem)
    if len(report.problems) > 50:
        print(f"... and {len(report.problems) - 50} more")
    status = "OK" if report.ok else "FAILED"
    print(f"{args.dir}: {status}: {report.shards} shards, {report.samples} samples, {report.errors} errors checked")
    return 0 if report.ok else 1


def _export(args: argparse.Namespace) -> int:
    from manifests.export import export

    count = export(args.dir, args.to, args.dest, exclude_flagged=args.exclude_flagged)
    print(f"exported {count} samples to {args.dest} ({args.to})")
    return 0


def _view(args: argparse.Namespace) -> int:
    from got_data.errors import UserError
    from got_data.viewer.catalog import ViewerError
    from got_data.viewer.server import ViewerConfig, run

    config = ViewerConfig(args.dir, host=args.host, port=args.port, seed=args.seed, tokenizer=args.tokenizer)
    try:
        return run(config, open_browser=not args.no_open)
    except ViewerError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None


def _run(args: argparse.Namespace) -> int:
    from got_data.dag import DagRunner, format_report, load_dag

    runner = DagRunner(load_dag(args.dag), scale=args.scale, only=args.only or None,
                       workers=args.workers, address=args.address)
    try:
        report = runner.run(log=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        runner.close()
    print(format_report(report))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from got_data.dag import DagRunner, format_plan, load_dag

    print(format_plan(DagRunner(load_dag(args.dag), scale=args.scale, only=args.only or None).plan()))
    return 0


COMMANDS = {"build": _build, "engines": _engines, "validate": _validate, "export": _export, "view": _view, "run": _run, "plan": _plan}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 3 and argv[0] == "build" and ("-h" in argv or "--help" in argv):
        engine = next((a for a in argv[1:] if not a.startswith("-")), None)
        if engine:
            build_parser = _Parser(prog="got-data build")
            _add_build_args(build_parser)
            print(build_parser.format_help())
            print(_engine_help(engine))
            return 0
    args = make_parser().parse_args(argv)
    from got_data.errors import UserError

    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"got-data: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("got-data: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
