"""Where a posting's time goes at concurrency 1, beside the floor's p50 in the same run.

One server of ``_variants:timed`` (the service as it is, marking each posting's stages:
see its docstring) on a durable PostgreSQL and Kafka, as ``income.py`` sets them up;
rounds alternate the floor at one connection and the service at c=1. It prints each
stage's median wall and CPU time, the client's p50, and what is left of the p50 budget
(2× the floor's) once the database's share is paid. ``make bench`` does not run it.

    UV_PYTHON_DOWNLOADS=never uv run python bench/_timeline.py --rounds 3 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import income as bench
from _variants import STAGES

BENCH = Path(__file__).parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase and round")
    args = parser.parse_args(argv)

    from ipshare.app import migrate

    root = bench.scratch_root("most-timeline-")
    procs = bench.Processes(root=root)
    timeline = root / "timeline.jsonl"
    try:
        bench.start_infrastructure(procs)
        for db in ("ipshare", "floor"):
            procs.pg.create_database(db)
            migrate(procs.pg.url(db))
        key_dir = root / "dev-keys"
        token = bench.officer_token(key_dir)
        port = bench.free_port()
        env = bench.service_env(procs, "ipshare", key_dir)
        env["PYTHONPATH"] = os.pathsep.join([str(BENCH), env.get("PYTHONPATH", "")])
        env["BENCH_TIMELINE_OUT"] = str(timeline)
        procs.service = bench.launch_servers("_variants:timed", [port], env,
                                             root / "ipshare.log")
        bench.wait_ready(procs, port)
        agreements = bench.seed(port, token, 1)

        seq = [0]
        warm = bench.run_load([port], token, agreements, 1, 3.0, seq)
        template = bench.capture_template(procs.pg.dsn("ipshare"))
        bench.copy_parents(procs.pg.dsn("floor"), template)
        skip = len(timeline.read_text().splitlines())  # the warm-up's postings
        floor, service = [], []
        for r in range(args.rounds):
            bench.out(f"round {r + 1} of {args.rounds}: floor c=1, service c=1...")
            floor.append(bench.run_floor(procs.pg.dsn("floor"), template, 1, args.seconds))
            service.append(bench.run_load([port], token, agreements, 1, args.seconds, seq))
        records = [json.loads(line) for line in timeline.read_text().splitlines()[skip:]]
        if not warm.ok or not records:
            raise RuntimeError(f"nothing posted: {warm.errors}")
        report(bench.pooled_floor(floor), bench.pooled_load(service), records)
        return 0
    finally:
        procs.stop()


def report(floor: bench.FloorResult, service: bench.LoadResult,
           records: list[dict[str, list[float]]]) -> None:
    def median(stage: str, i: int) -> float:
        return statistics.median(r[stage][i] for r in records) * 1000

    floor_p50 = statistics.median(floor.latencies) * 1000
    client_p50 = statistics.median(service.latencies) * 1000
    bench.out(f"\n{len(records)} postings at c=1 (medians, ms):\n")
    bench.out("| stage | wall | CPU (event loop's thread) | waiting |")
    bench.out("|---|---:|---:|---:|")
    for stage in STAGES:
        wall, cpu = median(stage, 0), median(stage, 1)
        bench.out(f"| {stage} | {wall:.2f} | {cpu:.2f} | {max(0.0, wall - cpu):.2f} |")
    waits = sum(max(0.0, median(s, 0) - median(s, 1)) for s in ("reads", "write"))
    outside = client_p50 - median("app", 0)
    budget = 2 * floor_p50
    bench.out(f"\nclient p50 {client_p50:.2f} ms = the app {median('app', 0):.2f} + outside "
              f"it (uvicorn, the socket, the client) {outside:.2f}; floor p50 "
              f"{floor_p50:.2f} ms, ratio {client_p50 / floor_p50:.2f}×.")
    bench.out(f"The ≤ 2× budget is {budget:.2f} ms: after the two round trips' waits "
              f"({waits:.2f}) and what is outside the app ({outside:.2f}), "
              f"{budget - waits - outside:.2f} ms is left for the app's CPU, which takes "
              f"{median('app', 1):.2f}.")


if __name__ == "__main__":
    sys.exit(main())
