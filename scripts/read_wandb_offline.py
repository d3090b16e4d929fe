"""Read a run folder's wandb files back, record by record, without a server.

    .venv/bin/python scripts/read_wandb_offline.py RUN_DIR

Prints each training segment's file (run id, whether it ended, the steps it logged, its
artifacts), then for the run as a whole: the run ids (a resumed run has one), the steps
covered, the steps missing between the first and the last, every (step, key) logged more
than once, and the histogram keys and figures per step. Exit status 1 when the files hold more
than one run id or a (step, key) twice, 2 when RUN_DIR holds no wandb file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sgd_dynamics.wandb_io.history_check import check_history, format_check


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("error: usage: read_wandb_offline.py RUN_DIR: a run folder", file=sys.stderr)
        return 2
    check = check_history(argv[0])
    if not check.segments:
        print(f"error: {argv[0]}: no wandb/*run-*/run-*.wandb file: a run folder", file=sys.stderr)
        return 2
    print(format_check(check, root=argv[0]))
    return 0 if len(check.run_ids) == 1 and not check.duplicated else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
