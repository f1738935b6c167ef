"""``hub worker`` that stops for good just before writing the checkpoint that moves its flow to a
given step, for tests that kill it between two calls (``python -m tests.hub.paused_worker``).

The earlier call has been answered and the next has not left; the answer's journal row waits for
that very checkpoint (hub.runner): the state a worker killed between two calls leaves, which
latency knobs cannot produce on demand. Everything else is
the real worker. ``HUB_TEST_PAUSE_BEFORE_STEP`` names the step index; the file named by
``HUB_TEST_PAUSED_FLAG`` is created when the worker stops there, so the test knows when to kill.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from hub import runner
from hub.checkpoint import Checkpoint, save_checkpoint
from hub.db.engine import Database


def main() -> None:
    step = int(os.environ["HUB_TEST_PAUSE_BEFORE_STEP"])
    flag = Path(os.environ["HUB_TEST_PAUSED_FLAG"])

    def paused(db: Database, checkpoint: Checkpoint) -> bool:
        if checkpoint.message.get("step") == step and "state" not in checkpoint.message:
            flag.touch()
            time.sleep(3600)  # until the test kills the process
        return save_checkpoint(db, checkpoint)

    runner.save_checkpoint = paused
    from hub.cli import app

    sys.argv = ["hub", "worker"]
    app()


if __name__ == "__main__":
    main()
