"""The documentation's reference pages, written from the code at every build (a MkDocs hook).

reference/commands.md comes from the argparse parsers (`nnfractal.cli.main.make_parser`), and
reference/presets.md from the preset TOML files (`nnfractal.config.load_preset`), so neither can
drift from what the program accepts. The hook also reads every hand-written page for
``nnfractal COMMAND ... --flag`` and warns (an error under ``mkdocs build --strict``) where the
command has no such flag. tests/test_docs.py checks the same functions against the parsers.
"""
from __future__ import annotations

import argparse
import html
import re
from dataclasses import dataclass
from importlib import resources

import tomllib

COMMANDS_PAGE = "reference/commands.md"
PRESETS_PAGE = "reference/presets.md"
SHARED_SECTION = "config-flags"     # anchor of the flags that run, sample and compare share


@dataclass(frozen=True)
class Command:
    """One (sub)command: its name as typed after `nnfractal`, other names, and its parser."""
    name: str
    aliases: tuple[str, ...]
    help: str
    parser: argparse.ArgumentParser


def commands(parser: argparse.ArgumentParser | None = None, prefix: str = "") -> list[Command]:
    """Every subcommand of `parser` (default: nnfractal's), nested ones as 'a b', in the order
    they were added. Aliases are the other names argparse maps to the same parser."""
    if parser is None:
        from nnfractal.cli.main import make_parser
        parser = make_parser()
    found = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        names_of: dict[int, list[str]] = {}
        for name, sub in action.choices.items():
            names_of.setdefault(id(sub), []).append(name)
        for names in names_of.values():
            sub = action.choices[names[0]]
            full = f"{prefix}{names[0]}"
            found.append(Command(full, tuple(names[1:]), helps.get(names[0]) or "", sub))
            found.extend(commands(sub, prefix=full + " "))
    return found


def options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """(group title, action) of every argument but --help and nested subcommands, in the order
    `--help` shows them."""
    out = []
    for group in parser._action_groups:
        for action in group._group_actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            out.append((group.title or "options", action))
    return out


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every flag spelling the parser accepts (aliases included), without -h/--help."""
    return {s for _, a in options(parser) for s in a.option_strings}


def _group_key(parser, title):
    return (title, tuple(tuple(a.option_strings) for t, a in options(parser) if t == title))


def shared_groups(cmds: list[Command]) -> list[str]:
    """Titles of argument groups that two or more commands hold identically (the config flags
    of run, sample and compare): the page lists them once."""
    seen: dict[tuple, int] = {}
    for cmd in cmds:
        for title in dict.fromkeys(t for t, _ in options(cmd.parser)):
            if title not in ("options", "positional arguments"):
                key = _group_key(cmd.parser, title)
                seen[key] = seen.get(key, 0) + 1
    return [key[0] for key, count in seen.items() if count > 1]


def anchor(command: str, flag: str) -> str:
    """The id of a flag's row: 'run-tile-rows', 'config-seed', 'compare-pos-preset_a'."""
    return f"{command.replace(' ', '-')}-{flag.lstrip('-')}"


def _cell(text: str) -> str:
    """One table cell on one line: `<`, `>`, `&`, `*` and `|` escaped outside code spans (inside
    them Python-Markdown's tables already ignore `|`, and an escape would show)."""
    parts = re.split(r"(`+[^`]*`+)", " ".join(text.replace("%%", "%").split()))
    for i in range(0, len(parts), 2):
        parts[i] = html.escape(parts[i], quote=False).replace("*", "\\*").replace("|", "\\|")
    return "".join(parts)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    if action.choices:
        text += f" (one of: {', '.join(map(str, action.choices))})"
    default = action.default
    shown_default = (default not in (None, False, argparse.SUPPRESS) and
                     not isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)))
    if shown_default and "default" not in text:
        text += f" (default {default})"
    return _cell(text)


def _metavar(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    formatter = parser._get_formatter()
    return formatter._format_args(action, formatter._get_default_metavar_for_optional(action))


def _rows(command: str, parser: argparse.ArgumentParser, actions) -> list[str]:
    rows = ["| flag | value | what it does |", "|---|---|---|"]
    for action in actions:
        if action.option_strings:
            first, *others = action.option_strings
            names = f"`{first}`" + "".join(f"<br>`{o}`" for o in others)
            ident = anchor(command, first)
        else:
            names = f"`{action.metavar or action.dest}` (positional)"
            ident = anchor(command, f"pos-{action.dest}")
        value = _metavar(parser, action)
        value = f"`{value}`" if value else ""
        rows.append(f'| <span id="{ident}"></span>{names} | {value} | {_help(parser, action)} |')
    return rows


def commands_markdown(cmds: list[Command] | None = None) -> str:
    """reference/commands.md: every command, its usage line and every flag with its aliases."""
    cmds = commands() if cmds is None else cmds
    shared = shared_groups(cmds)
    lines = ["# Commands", "",
             "<!-- Written by docs/hooks/reference.py from nnfractal.cli.main.make_parser() at "
             "every build: edit the parsers, not this page. -->", "",
             "Every command and flag of `nnfractal` (also `python -m nnfractal`), as "
             "`nnfractal COMMAND --help` prints them. Flags with two spellings (`--tile-rows`, "
             "`--tile_rows`) accept both. A refused value is one line, "
             "`nnfractal: error: <field>: <what> (allowed: ...)`, exit code 2, nothing written "
             "([faults](faults.md)).", "",
             "| command | what it does |", "|---|---|"]
    for cmd in cmds:
        also = f" (also `{'`, `'.join(cmd.aliases)}`)" if cmd.aliases else ""
        lines.append(f"| [`nnfractal {cmd.name}`](#{cmd.name.replace(' ', '-')}){also} | "
                     f"{_cell(cmd.help)} |")
    for cmd in cmds:
        formatter = cmd.parser.formatter_class(prog=cmd.parser.prog, width=88)
        formatter.add_usage(cmd.parser.usage, cmd.parser._actions,
                            cmd.parser._mutually_exclusive_groups, prefix="")
        usage = formatter.format_help().strip("\n")
        lines += ["", f"## nnfractal {cmd.name} {{#{cmd.name.replace(' ', '-')}}}", ""]
        if cmd.help:
            lines += [_cell(cmd.help)[0].upper() + _cell(cmd.help)[1:] + ".", ""]
        if cmd.aliases:
            lines += [f"Also spelled: {', '.join(f'`nnfractal {a}`' for a in cmd.aliases)}.", ""]
        if cmd.parser.description:
            lines += [_cell(cmd.parser.description), ""]
        lines += ["```text", usage, "```"]
        by_group: dict[str, list] = {}
        for title, action in options(cmd.parser):
            by_group.setdefault(title, []).append(action)
        own = [t for t in by_group if t not in shared]
        for title in own:
            heading = {"positional arguments": "Arguments", "options": "Flags"}.get(title, title)
            lines += ["", f"**{heading[0].upper() + heading[1:]}**", ""]
            lines += _rows(cmd.name, cmd.parser, by_group[title])
        common = [t for t in by_group if t in shared]
        if common:
            lines += ["", f"**And the [config flags](#{SHARED_SECTION})**: "
                      + ", ".join(common) + ".", ""]
    lines += _shared_markdown(cmds, shared)
    return "\n".join(lines) + "\n"


def _shared_markdown(cmds: list[Command], shared: list[str]) -> list[str]:
    if not shared:
        return []
    users = [c.name for c in cmds if set(shared) <= {t for t, _ in options(c.parser)}]
    holder = next(c for c in cmds if c.name in users)
    lines = ["", f"## Config flags {{#{SHARED_SECTION}}}", "",
             f"`nnfractal {'`, `nnfractal '.join(users)}` take these. Each sets the config field "
             "of the same name (a [preset](presets.md)'s TOML key); a flag left out keeps the "
             "preset's value, and a flag the chosen model does not read is refused."]
    for title in shared:
        actions = [a for t, a in options(holder.parser) if t == title]
        lines += ["", f"### {title[0].upper() + title[1:]}", ""]
        lines += _rows("config", holder.parser, actions)
    return lines


def documented_flags(markdown: str) -> dict[str, set[str]]:
    """Read commands.md back: command -> every flag spelling its page lists (the config flags
    counted for each command that takes them). What tests/test_docs.py compares with the parsers."""
    sections = re.split(r"^## ", markdown, flags=re.M)[1:]
    flags: dict[str, set[str]] = {}
    uses_config = set()
    for section in sections:
        title = section.split("\n", 1)[0]
        name = "config" if title.startswith("Config flags") else \
            re.sub(r"\s*\{#.*\}$", "", title).removeprefix("nnfractal ").strip()
        rows = [line for line in section.splitlines() if line.startswith("| <span id=")]
        flags[name] = {f for row in rows for f in re.findall(r"`(--?[\w-]+)`", row.split(" | ")[0])}
        if f"](#{SHARED_SECTION})" in section and name != "config":
            uses_config.add(name)
    config = flags.pop("config", set())
    for name in uses_config:
        flags[name] |= config
    return flags


# ---- presets -------------------------------------------------------------------------------

def preset_comment(name: str) -> str:
    """The comment block at the top of a preset's TOML file: what it is for."""
    text = resources.files("nnfractal.presets").joinpath(f"{name}.toml").read_text()
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def presets_markdown() -> str:
    """reference/presets.md: every preset's purpose (its TOML comment), its one-line summary
    (`nnfractal presets`) and every value its file sets."""
    from nnfractal.cli.main import preset_line
    from nnfractal.config import DEFAULT_PRESET, load_preset, preset_names
    lines = ["# Presets", "",
             "<!-- Written by docs/hooks/reference.py from nnfractal/presets/*.toml at every "
             "build: edit the TOML files, not this page. -->", "",
             "A preset is a TOML file in `nnfractal/presets/`: the values of a run's config. "
             f"`nnfractal run` without `--preset` trains `{DEFAULT_PRESET}`. Every key is a "
             "[config flag](commands.md#config-flags) of the same name (`mnmx` = `--mnmx`, "
             "`num_epochs` = `--num_epochs`); a flag given on the command line wins over the "
             "preset, and fields a file leaves out keep the defaults of `nnfractal.config.Config`. "
             "`nnfractal presets` prints the one-line summaries.", "",
             "| preset | what it trains |", "|---|---|"]
    names = preset_names()
    for name in names:
        summary = preset_line(name).split(None, 1)[1].removeprefix("(default)").strip()
        lines.append(f"| [`{name}`](#{name}) | {_cell(summary)} |")
    for name in names:
        load_preset(name)                    # fails the build on a preset the config refuses
        raw = tomllib.loads(resources.files("nnfractal.presets").joinpath(f"{name}.toml")
                            .read_text())
        tag = " (default)" if name == DEFAULT_PRESET else ""
        lines += ["", f"## {name}{tag} {{#{name}}}", "", _cell(preset_comment(name)), "",
                  f"```bash\nnnfractal run --preset {name}\n```", "",
                  "| key | value |", "|---|---|"]
        lines += [f"| `{key}` | `{value!r}` |".replace("'", '"') for key, value in raw.items()]
    return "\n".join(lines) + "\n"


# ---- the layers ------------------------------------------------------------------------------

LAYERS_MARKER = "<!-- generated: layers -->"


def _first_paragraph(path) -> str:
    import ast
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return " ".join(doc.split("\n\n")[0].split())


def floors(pyproject_text: str) -> list[tuple[list[str], str]]:
    """The first import-linter contract's layers, top first: (its packages, the comments written
    beside or above it in pyproject.toml)."""
    block = pyproject_text.split("[[tool.importlinter.contracts]]")[1]
    body = block[block.index("layers = [") + len("layers = ["):]
    body = body[:body.index("\n]")]
    out, pending = [], []
    for line in body.splitlines():
        match = re.match(r'\s*"([^"]+)",?\s*(?:#\s*(.*))?$', line)
        if match:
            names = [n.strip() for n in match.group(1).split("|")]
            out.append((names, " ".join(pending + [match.group(2) or ""]).strip()))
            pending = []
        elif line.strip().startswith("#"):
            pending.append(line.strip().lstrip("#").strip())
    return out


def layers_markdown(root) -> str:
    """The floors of pyproject.toml's import-linter contract, top first, with every module of each
    subpackage and the first paragraph of its docstring."""
    from pathlib import Path
    root = Path(root)
    package = root / "nnfractal"
    lines = ["| floor | packages | pyproject.toml says |", "|---|---|---|"]
    for number, (names, comment) in enumerate(floors((root / "pyproject.toml").read_text())):
        packages = " \\| ".join(f"`{name}`" for name in names)
        lines.append(f"| {number + 1} | {packages} | {_cell(comment)} |")
    lines += ["", "| module | what it does (its docstring) |", "|---|---|"]
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) < 2 or parts[-1] == "__main__" or "hooks" in parts:
            continue
        lines.append(f"| `{'.'.join(parts)}` | {_cell(_first_paragraph(path))} |")
    return "\n".join(lines)


# ---- flags named in hand-written pages -----------------------------------------------------

COMMAND_LINE = re.compile(r"(?:^|[;&|(]\s*|\$\s*)nnfractal\s+([a-z][\w-]*)(.*)", re.M)
CODE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```|`([^`\n]+)`", re.M | re.S)


def unknown_flags(text: str, cmds: list[Command] | None = None) -> list[str]:
    """'nnfractal run --x' for every flag that a command line in the code of a markdown text
    (code blocks and inline code) gives a command that has no such flag, and 'nnfractal x' for a
    command that does not exist. A backslash at a line's end continues it."""
    cmds = commands() if cmds is None else cmds
    known = {c.name: option_strings(c.parser) for c in cmds}
    for cmd in cmds:
        for alias in cmd.aliases:
            known[alias] = known[cmd.name]
    problems = []
    for block, inline in CODE.findall(text):
        code = re.sub(r"\\\n\s*", " ", block or inline)
        for match in COMMAND_LINE.finditer(code):
            name, rest = match.group(1), re.split(r"\s#|;|&&|\|\||\s\.\.\.", match.group(2))[0]
            if name not in known:
                problems.append(f"nnfractal {name}")
                continue
            for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
                if flag not in known[name] and flag != "--help":
                    problems.append(f"nnfractal {name} {flag}")
    return problems


# ---- MkDocs events -------------------------------------------------------------------------

def on_files(files, config):
    """Add the generated pages to the build (they exist in no folder)."""
    from mkdocs.structure.files import File
    for path, write in ((COMMANDS_PAGE, commands_markdown), (PRESETS_PAGE, presets_markdown)):
        files.append(File.generated(config, path, content=write()))
    return files


def on_page_markdown(markdown, page, config, files):
    """Fill in the layers table; warn (strict: fail) where a page names a flag its command does
    not have."""
    import logging
    from pathlib import Path
    if LAYERS_MARKER in markdown:
        markdown = markdown.replace(LAYERS_MARKER, layers_markdown(Path(config.config_file_path).parent))
    log = logging.getLogger("mkdocs.plugins.reference")
    for problem in unknown_flags(markdown):
        log.warning(f"{page.file.src_uri}: `{problem}` does not exist (see {COMMANDS_PAGE})")
    return markdown
