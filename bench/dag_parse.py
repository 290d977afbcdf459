"""How long each DAG file takes to parse (the dag-processor does this every few seconds), measured in
fresh interpreters (Airflow itself already imported, as in the dag-processor) with a warehouse that
cannot be reached: parsing must not depend on it.

    .venv/bin/python bench/dag_parse.py [--repeat 5]

Prints one JSON line per DAG file: min / median seconds over the repeats. Target: under 2 s each on
the 2-core development machine (a busy machine doubles it; this is why the figure is not a test).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from dtsen.paths import PROJECT_ROOT
from dtsen_dev.local_airflow import airflow_env

SCRIPT = (
    "import sys, time; from airflow.dag_processing.dagbag import DagBag; t = time.perf_counter(); "
    "b = DagBag(dag_folder=sys.argv[1]); assert not b.import_errors, b.import_errors; "
    "print('SECONDS', time.perf_counter() - t)"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = (
            os.environ
            | airflow_env(home=Path(home) / "airflow")
            | {
                "DTSEN_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/unreachable",
                "DTSEN_HOME": home,
            }
        )
        for path in sorted((PROJECT_ROOT / "dags").glob("*.py")):
            times = []
            for _ in range(args.repeat):
                done = subprocess.run(
                    [sys.executable, "-c", SCRIPT, str(path)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times.append(float(done.stdout.split("SECONDS")[-1]))
            print(
                json.dumps(
                    {
                        "dag_file": path.name,
                        "min_seconds": round(min(times), 2),
                        "median_seconds": round(statistics.median(times), 2),
                        "target_seconds": 2.0,
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
