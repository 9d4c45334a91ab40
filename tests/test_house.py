"""House rules of the package's code, read from its syntax trees: functions stay short, and the
window's numbers are read through `nnfractal.window.Window` only."""
import ast
from pathlib import Path

import nnfractal

PACKAGE = Path(nnfractal.__file__).parent
MAX_FUNCTION_LINES = 80

# Functions allowed over MAX_FUNCTION_LINES lines of code, each with its reason.
LONG_FUNCTIONS = {
    "training/engine.py:train_chunk":
        "the training loop of one chunk: its steps, early exit, padding and the fast paths share "
        "the chunk's tensors; being reworked (helper speed) - split after that lands",
    "cli/common.py:add_run_flags":
        "the run command's flag table, one add_argument per flag in --help's order; being "
        "extended (helper replay) - split by argument group after that lands",
}

# Modules that still read mnmx by hand (tuple unpacking, indexing), each with its reason.
MNMX_BY_HAND: dict[str, str] = {}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path))


def code_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring (a Parameters/Returns block is documentation,
    not complexity)."""
    lines = fn.end_lineno - fn.lineno + 1
    first = fn.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def long_functions() -> dict[str, int]:
    found = {}
    for name, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and code_lines(node) > MAX_FUNCTION_LINES:
                found[f"{name}:{node.name}"] = code_lines(node)
    return found


def test_no_function_is_longer_than_80_lines_of_code_unless_listed_with_its_reason():
    found = long_functions()
    unlisted = {k: v for k, v in found.items() if k not in LONG_FUNCTIONS}
    assert not unlisted, f"over {MAX_FUNCTION_LINES} lines of code (split them, or list them in " \
                         f"LONG_FUNCTIONS with the reason): {unlisted}"
    stale = sorted(set(LONG_FUNCTIONS) - set(found))
    assert not stale, f"LONG_FUNCTIONS lists functions that are short now (take them out): {stale}"
    assert all(len(reason) > 20 for reason in LONG_FUNCTIONS.values())


def _is_mnmx(node: ast.AST) -> bool:
    """`x.mnmx`, `x["mnmx"]` or a name `mnmx`."""
    return (isinstance(node, ast.Attribute) and node.attr == "mnmx") \
        or (isinstance(node, ast.Name) and node.id == "mnmx") \
        or (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
            and node.slice.value == "mnmx")


def by_hand(tree: ast.AST) -> list[int]:
    """Lines that unpack mnmx into four names or index into it."""
    lines = []
    for node in ast.walk(tree):
        unpack = isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple) \
            and len(node.targets[0].elts) == 4 and any(_is_mnmx(n) for n in ast.walk(node.value))
        index = isinstance(node, ast.Subscript) and _is_mnmx(node.value)
        if unpack or index:
            lines.append(node.lineno)
    return lines


def mnmx_by_hand() -> dict[str, list[int]]:
    return {name: lines for name, tree in modules() if name != "window.py"
            and (lines := by_hand(tree))}


def test_mnmx_is_read_through_window_only():
    found = mnmx_by_hand()
    unlisted = {k: v for k, v in found.items() if k not in MNMX_BY_HAND}
    assert not unlisted, f"mnmx read by hand (use nnfractal.window.Window): {unlisted}"
    stale = sorted(set(MNMX_BY_HAND) - set(found))
    assert not stale, f"MNMX_BY_HAND lists modules that no longer read mnmx by hand: {stale}"


def test_the_checks_see_what_they_look_for():
    sample = ast.parse("def f(cfg):\n    '''doc\n\n    more'''\n    y0, y1, x0, x1 = cfg.mnmx\n"
                       "    return cfg.mnmx[2:], unit['mnmx'][0]\n")
    assert code_lines(sample.body[0]) == 3                      # def, assignment, return
    assert by_hand(sample) == [5, 6, 6]
    fine = ast.parse("w = Window.of(cfg)\nlo, hi = w.y0, w.y1\nrun(mnmx=w.mnmx)\n")
    assert by_hand(fine) == []
