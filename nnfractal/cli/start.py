"""The `nnfractal` command's entry point: restart on tcmalloc first, then import the CLI, and
end without the interpreter's teardown.

`allocator.restart_with_tcmalloc` re-executes the process once; done here, before the command
table and its imports load, the first process costs an interpreter start and no more.

After the command, tearing down an interpreter that imported torch takes a good part of a second
(its modules and libraries freed one by one; benchmarks/README.md) and changes nothing on disk,
so the process ends with `os._exit`
once a normal exit's own steps have run: non-daemon threads joined, atexit handlers called
(Ray's shutdown among them), stdout and stderr flushed.
"""
from __future__ import annotations

import atexit
import os
import sys

_exit_code: list[int] = []     # the command's exit status, once it returned one


def console_main() -> int:
    """`nnfractal ...` and `python -m nnfractal ...`: cli.main.console_main after the restart."""
    atexit.register(_end_without_teardown)    # registered first: called after every other handler
    from nnfractal.training.allocator import restart_with_tcmalloc
    restart_with_tcmalloc()
    from nnfractal.cli.main import console_main as main
    code = main()
    if isinstance(code, int):           # anything else: sys.exit's own reading, the usual exit
        _exit_code.append(code)
    return code


def _end_without_teardown() -> None:
    """The last atexit handler: flush stdout and stderr and end the process with the command's
    status; a command that raised instead of returning exits the usual way."""
    if not _exit_code:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe or stream: nothing more can be written
            pass
    os._exit(_exit_code[0])
