"""Throughput of two configurations in short alternating rounds, both servers kept up: ratios paired in time.

On a shared machine the speed of the server's core drifts by more than the
differences measured: in one ``make bench`` run the uninstrumented database
endpoint served 1,224 req/s in one repetition and 796 in the next.  Its
repetitions put a minute and more between the two servers of a pair.  This
starts both servers once, pinned to the same core (one is loaded at a time;
the other idles), warms both, then loads them in turn for ``--seconds``
each, ``--rounds`` times, swapping which goes first every round (A B, B A,
A B, ...) so a steady drift cancels.  Each round gives one ratio of the
second configuration's throughput to the first's, measured seconds apart::

    python -m benchmarks.paired --path /api/products/1 --rounds 10 --seconds 4

It prints each round, then the median of the round ratios with their range
and the ratio of the medians.  Every instrumented server exports to the same
OTLP receiver as in ``make bench`` (``benchmarks/sink.py``).

The server not being loaded is not quite idle: an instrumented one still
exports (its metrics every 5 s, the last spans of its own round), on the
same core, during the other's round, which moves the ratio towards 1.  How
much CPU each server used during the other's rounds is read from
``/proc/<pid>/stat`` and printed, so that share is visible.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="examples.shop.app:app")
    parser.add_argument("--path", default="/api/products/1")
    parser.add_argument("--first", default="uninstrumented", help="the configuration ratios are taken against")
    parser.add_argument("--second", default="monitor-production")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=4, help="whole seconds, as wrk takes them")
    parser.add_argument("--warmup", type=int, default=2, help="whole seconds of load on each server first")
    args = parser.parse_args(argv)
    if args.rounds < 1 or not 1 <= args.seconds <= 60 or not 1 <= args.warmup <= 60:
        parser.error("--rounds must be at least 1, --seconds and --warmup from 1 to 60")
    if args.first == args.second:
        parser.error(f"--first and --second are both {args.first!r}: name two configurations")

    from benchmarks.configurations import build_configurations
    from benchmarks.loadgen import run_wrk
    from benchmarks.processes import AppServer, SinkProcess, clean_environment, free_port
    from benchmarks.run import cpu_plan

    by_key = {c.key: c for c in build_configurations(Path(sys.executable).parent, None)}
    for name in (args.first, args.second):
        if name not in by_key:
            parser.error(f"unknown configuration {name!r}: one of {', '.join(by_key)}")
    pair = [by_key[args.first], by_key[args.second]]
    server_cpu, load_cpu = cpu_plan()
    rps: list[list[float]] = [[], []]
    ratios: list[float] = []
    idle_cpu = [0.0, 0.0]  # CPU seconds each server used while the other was loaded
    failed = 0  # non-2xx answers and socket errors
    with SinkProcess(sys.executable, cpu=load_cpu) as sink, tempfile.TemporaryDirectory() as work:
        servers: list[Any] = []
        try:
            for index, configuration in enumerate(pair):
                port = free_port()
                env = clean_environment(configuration.environment(sink.endpoint, service=f"paired-{configuration.key}"))
                server = AppServer(configuration.server_command(args.app, port), env, port, server_cpu,
                                   Path(work) / f"{index}-{configuration.key}.log")
                servers.append(server)  # before it starts: an interrupted start is still stopped
                server.start(args.path)
            for server in servers:
                run_wrk(server.base_url + args.path, args.warmup, cpu=load_cpu)
            for round_number in range(args.rounds):
                order = [0, 1] if round_number % 2 == 0 else [1, 0]
                got: dict[int, float] = {}
                for index in order:
                    other = servers[1 - index]
                    before = _cpu_seconds(other.pid)
                    load = run_wrk(servers[index].base_url + args.path, args.seconds, cpu=load_cpu)
                    idle_cpu[1 - index] += _cpu_seconds(other.pid) - before
                    if load.rps <= 0:
                        raise SystemExit(f"{pair[index].key} served nothing in round {round_number + 1}")
                    failed += load.non_2xx + load.socket_errors
                    got[index] = load.rps
                    rps[index].append(load.rps)
                ratio = got[1] / got[0]
                ratios.append(ratio)
                print(f"round {round_number + 1} ({pair[order[0]].key} first): {pair[0].key} {got[0]:,.0f} req/s, "
                      f"{pair[1].key} {got[1]:,.0f} req/s, ratio {ratio:.3f}", flush=True)
        finally:
            for server in servers:
                server.stop()
    first, second = (statistics.median(values) for values in rps)
    loaded = args.rounds * args.seconds
    print(f"\n{args.path}, {args.rounds} alternating rounds of {args.seconds} s, both servers kept up:")
    print(f"{pair[1].key} / {pair[0].key}: median of the round ratios {statistics.median(ratios):.2f}x "
          f"(rounds {min(ratios):.2f}–{max(ratios):.2f}); ratio of the medians {second / first:.2f}x "
          f"({second:,.0f} / {first:,.0f} req/s)")
    print(f"while the other was loaded, {pair[0].key} used {100 * idle_cpu[0] / loaded:.1f}% of a core and "
          f"{pair[1].key} {100 * idle_cpu[1] / loaded:.1f}%")
    if failed:
        print(f"{failed:,} answers were errors or failed connections (non-2xx, socket errors); they count in req/s")
    return 0


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    raise SystemExit(main())
