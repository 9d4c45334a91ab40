"""The `nnfractal` command's entry point: restart on tcmalloc first, then import the CLI.

`allocator.restart_with_tcmalloc` re-executes the process once; done here, before the command
table and its imports load (~0.2 s), the first process costs an interpreter start and no more.
"""
from __future__ import annotations


def console_main() -> int:
    """`nnfractal ...` and `python -m nnfractal ...`: cli.main.console_main after the restart."""
    from nnfractal.training.allocator import restart_with_tcmalloc
    restart_with_tcmalloc()
    from nnfractal.cli.main import console_main as main
    return main()
