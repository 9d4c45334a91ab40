"""`python benchmarks/run.py [flags]` = `nnfractal bench [flags]` (see nnfractal/cli/bench.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnfractal.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
