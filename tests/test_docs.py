"""The documentation follows the code: the reference pages that docs/hooks/reference.py writes at
every `mkdocs build` list exactly the flags the parsers accept, and no page names a flag that a
command does not have."""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import tomllib

from nnfractal.cli.main import make_parser
from nnfractal.config import preset_names

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "hooks" / "reference.py")
reference = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = reference          # dataclasses look their module up there
_spec.loader.exec_module(reference)


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every name argparse accepts as a subcommand (aliases included), nested ones as 'a b'.
    Walks argparse itself, not the generator's `commands`, so a bug there shows here."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in subparsers_of(sub).items()})
    return found


def accepted_flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string the parser accepts, from argparse's own table."""
    return set(parser._option_string_actions) - {"-h", "--help"}


@pytest.fixture(scope="module")
def commands_page():
    return reference.commands_markdown(reference.commands(make_parser()))


def test_every_command_has_a_section(commands_page):
    sections = set(re.findall(r"^## nnfractal (.+?) \{#", commands_page, flags=re.M))
    names = subparsers_of(make_parser())
    documented = {c.name: c for c in reference.commands(make_parser())}
    assert sections == set(documented)
    for name in names:                  # each name typed after `nnfractal`: a section or an alias
        assert name in sections or any(name.split()[-1] in c.aliases for c in documented.values())


def test_every_flag_and_alias_is_listed_and_nothing_else(commands_page):
    listed = reference.documented_flags(commands_page)
    for name, parser in subparsers_of(make_parser()).items():
        command = next(c.name for c in reference.commands(make_parser())
                       if c.name == name or name.split()[-1] in c.aliases)
        assert listed[command] == accepted_flags(parser), name


def test_a_flag_added_or_removed_after_writing_the_page_is_caught(commands_page):
    listed = reference.documented_flags(commands_page)
    parser = make_parser()
    run = subparsers_of(parser)["run"]
    run.add_argument("--brand-new", "--brand_new", type=int)
    assert listed["run"] != accepted_flags(run)
    assert accepted_flags(run) - listed["run"] == {"--brand-new", "--brand_new"}
    stale = reference.commands_markdown(reference.commands(parser))      # the page with it ...
    assert "--brand-new" in reference.documented_flags(stale)["run"]
    assert reference.documented_flags(stale)["run"] != accepted_flags(subparsers_of(make_parser())["run"])


def test_shared_config_flags_are_listed_once_and_counted_for_each_command(commands_page):
    assert commands_page.count('id="config-seed"') == 1
    assert 'id="run-seed"' not in commands_page
    listed = reference.documented_flags(commands_page)
    for command in ("run", "sample", "compare"):
        assert {"--seed", "--tile_batch", "--tile-batch", "--mnmx"} <= listed[command]
    assert "--mnmx" not in listed["zoom"]


def test_subcommand_aliases_and_nested_subcommands_are_documented():
    parser = argparse.ArgumentParser(prog="tool")
    sub = parser.add_subparsers(dest="command")
    first = sub.add_parser("first", aliases=["f"], help="the first one")
    first.add_argument("--alpha", "--alpha_", type=int, help="a | b")
    nested = first.add_subparsers(dest="inner").add_parser("inner", help="inside")
    nested.add_argument("--beta", action="store_true")
    cmds = reference.commands(parser)
    assert [(c.name, c.aliases) for c in cmds] == [("first", ("f",)), ("first inner", ())]
    page = reference.commands_markdown(cmds)
    assert "Also spelled: `nnfractal f`" in page
    assert reference.documented_flags(page) == {"first": {"--alpha", "--alpha_"},
                                                "first inner": {"--beta"}}
    assert r"a \| b" in page                       # a pipe in help text does not split the row


def test_presets_page_lists_every_preset_and_every_key_it_sets():
    page = reference.presets_markdown()
    sections = re.split(r"^## ", page, flags=re.M)[1:]
    by_name = {s.split()[0]: s for s in sections}
    assert set(by_name) == set(preset_names())
    for name, section in by_name.items():
        raw = tomllib.loads((ROOT / "nnfractal" / "presets" / f"{name}.toml").read_text())
        keys = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
        assert keys == list(raw), name
        assert f"nnfractal run --preset {name}" in section


def test_unknown_flags_finds_stale_command_lines():
    text = ("Run `nnfractal run --resolution 64 --no-such-flag`, then\n\n```bash\n"
            "nnfractal zoom RUN --factor 2 \\\n    --gone 3      # a comment --ignored\n"
            "nnfractal frobnicate --x\n```\nProse that says nnfractal run --also-ignored.")
    assert reference.unknown_flags(text) == ["nnfractal run --no-such-flag", "nnfractal zoom --gone",
                                             "nnfractal frobnicate"]
    assert reference.unknown_flags("`nnfractal compare A B --method transect --points 8`") == []


def test_readme_and_hand_written_pages_name_only_existing_flags():
    pages = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    problems = {str(p.relative_to(ROOT)): reference.unknown_flags(p.read_text()) for p in pages}
    assert {p: v for p, v in problems.items() if v} == {}
    assert len(pages) > 20


def test_layers_table_names_every_floor_of_the_contract():
    table = reference.layers_markdown(ROOT)
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = contract["contracts"][0]["layers"]
    for number, layer in enumerate(layers):
        for name in layer.split("|"):
            assert re.search(rf"^\| {number + 1} \|.*`{name.strip()}`", table, flags=re.M), name
    for path in (ROOT / "nnfractal").rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            assert f"| `{module}` |" in table


def test_every_figure_comes_from_the_figure_script():
    manifest = json.loads((ROOT / "docs" / "figures" / "manifest.json").read_text())
    recorded = set(manifest["quickstart"]["figures"])          # --expensive adds docs/paper, docs/skip
    on_disk = {str(p.relative_to(ROOT / "docs" / "figures")) for p in (ROOT / "docs" / "figures").rglob("*.png")}
    assert on_disk == recorded
    for part in manifest.values():
        assert re.fullmatch(r"[0-9a-f]{40}", part["commit"])
        for figure in part["figures"].values():
            assert figure["command"].startswith("nnfractal ")


def test_figure_commands_use_existing_flags():
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "docs" / "make_figures.py")
    make_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_figures)
    lines = [" ".join(make_figures.QUICKSTART)] + [
        command for _, commands, _ in make_figures.EXPENSIVE for command in commands
        if not command.startswith("(")]
    code = "\n".join(f"`nnfractal {line}`" for line in lines)
    assert reference.unknown_flags(code) == []
    assert reference.unknown_flags("`nnfractal zoom RUN --decadez 2`") == ["nnfractal zoom --decadez"]
