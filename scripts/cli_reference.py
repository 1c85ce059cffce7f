"""Write docs/CLI.md, the reference of every ssinfnet verb, from the command line's own parser.

    PYTHONPATH=src python scripts/cli_reference.py --write docs/CLI.md   # or without --write: print it

``tests/test_readme_table.py`` checks that docs/CLI.md equals what this prints, so the reference follows
every change to ``ssinfnet.cli.build_parser()``: rerun this after changing a verb's options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssinfnet.cli import build_parser

HEADER = """# ssinfnet command line reference

Generated from `ssinfnet.cli.build_parser()` by `python scripts/cli_reference.py --write docs/CLI.md`
(do not edit by hand). `ssinfnet VERB --help` prints the same. Every verb: bad input gives one line naming
the file and the problem, exit code 2; `ssinfnet --debug VERB ...` shows the traceback.
"""


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each verb under ``parser``, in registration order."""
    for action in parser._actions:  # argparse keeps them nowhere public
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def synopsis(prog: str, parser: argparse.ArgumentParser) -> str:
    words = [prog]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            words.append("VERB")
        elif not action.option_strings:
            name = action.metavar or action.dest.upper()
            words.append(f"{name}..." if action.nargs in ("+", "*") else name)
        elif action.required:
            words.append(f"{action.option_strings[-1]} {action.metavar or action.dest.upper()}")
    return " ".join(words) + " [options]"


def option_rows(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        name = ", ".join(action.option_strings) or (action.metavar or action.dest.upper())
        if action.option_strings and action.nargs != 0:
            metavar = action.metavar or (("{" + ",".join(map(str, action.choices)) + "}") if action.choices
                                          else action.dest.upper())
            name += " " + (" ".join(metavar) if isinstance(metavar, tuple) else metavar)
        elif not action.option_strings and action.choices:
            name += " {" + ",".join(map(str, action.choices)) + "}"
        shown = not (action.required or action.default is None or action.default is False
                     or action.default in (argparse.SUPPRESS, []))
        rows.append(f"| `{cell(name)}` | {cell(formatter._expand_help(action)) if action.help else ''} | "
                    f"{cell(action.default) if shown else ''} |")
    return rows


def section(prog: str, one_line: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## `{prog}`", ""]
    lines += [cell(one_line), ""] if one_line else []
    lines += [f"`{synopsis(prog, parser)}`", ""]
    lines += [cell(parser.description), ""] if parser.description else []
    rows = option_rows(parser)
    if rows:
        lines += ["| argument | meaning | default |", "|---|---|---|", *rows, ""]
    for name, help_text, sub in subcommands(parser):
        lines += section(f"{prog} {name}", help_text, sub)
    return lines


def reference() -> str:
    parser = build_parser()
    verbs = subcommands(parser)
    lines = [HEADER, "Verbs: " + ", ".join(f"`{name}`" for name, _, _ in verbs) + ".", ""]
    lines += section("ssinfnet", "", parser)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print (or write) the command line reference.")
    parser.add_argument("--write", type=Path, metavar="FILE", help="write it to FILE (docs/CLI.md)")
    args = parser.parse_args(argv)
    text = reference()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
