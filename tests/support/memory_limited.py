"""A worker process for the memory-limit test: local runs of the real pipeline, one per
renditions set, in ONE process (it must stay up through all of them), each job's ending
printed as a JSON line. The test starts it under RLIMIT_AS (tests/integration/test_memory_limit.py).

    python -m tests.support.memory_limited OUT CASES_JSON

``CASES_JSON``: ``[{"name": …, "inputs": [paths], "renditions": [...] | null}, …]``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cutq.core.renditions import parse_renditions
from cutq.worker.config import WorkerConfig
from cutq.worker.local_run import run_local


def main(out: str, cases_json: str) -> int:
    config = WorkerConfig.from_env(os.environ)
    for case in json.loads(Path(cases_json).read_text()):
        renditions = parse_renditions(case["renditions"]) if case["renditions"] else ()
        target = Path(out) / case["name"]
        run_local(case["inputs"], target, config, progress=False, renditions=renditions)
        for line in (target / "events.jsonl").read_text().splitlines():
            event = json.loads(line)
            data = event["data"]
            code = (data.get("error") or {}).get("code")
            print(json.dumps({"case": case["name"], "status": data["status"], "code": code}))
        sys.stdout.flush()
    print(json.dumps({"alive": True}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
