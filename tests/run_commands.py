"""Run ``concord`` commands one after another in one process, as ``make run`` (``concord demo``)
does: ``python -m tests.run_commands '[["import", ...], ["train"], ...]'``.

Each command goes through the CLI's own entry (its callback included); the first that fails
ends the run with its exit code.
"""

from __future__ import annotations

import json
import sys

from serving.cli.app import app


def main() -> int:
    for args in json.loads(sys.argv[1]):
        print(f"$ concord {' '.join(args)}", flush=True)
        code = app(args, standalone_mode=False)
        if code:
            return int(code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
