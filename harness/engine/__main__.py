"""``python -m harness.engine CONFIG.json [RESULTS_ROOT]``: one run in a process of its own
(:func:`harness.engine.run.run_in_subprocess`, which ``harness reproduce`` uses)."""

import json
import sys
from pathlib import Path

from harness.config import config_from_dict
from harness.engine.plan import plan_run
from harness.engine.run import execute

if __name__ == "__main__":
    config = config_from_dict(json.loads(Path(sys.argv[1]).read_text()))
    execute(plan_run(config, sys.argv[2] if len(sys.argv) > 2 else None), progress=False)
