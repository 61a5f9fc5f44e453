"""`minimodel`: the command line, a thin layer over the library's API."""

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minimodel", description="Mini-model adaptation of XLM-R style encoders to new languages.")
    parser.add_argument("--version", action="version", version=f"hf-minimodel {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
