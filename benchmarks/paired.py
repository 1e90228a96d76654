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

Each round also gives each server's requests per CPU-second: the requests
it served over the CPU time (user and system, all its threads, from
``/proc/<pid>/stat``) it used while loaded. Time the machine lends to
others (steal) and waiting are not in it, so it moves less than req/s.

``--together`` loads both servers at once instead, each with its own wrk,
both servers on the one core: at every instant both meet the same machine,
so a drift in its speed cannot fall on one of them. The scheduler splits
the core between them, so req/s alone says little; the ratio of requests
per CPU-second is the figure then::

    python -m benchmarks.paired --path /api/products/1 --rounds 10 --seconds 4 --together

The server not being loaded is not quite idle (without ``--together``): an instrumented one still
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
    parser.add_argument(
        "--together",
        action="store_true",
        help="load both servers at once (each with its own wrk), both on the one core",
    )
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
    per_cpu: list[list[float]] = [[], []]  # requests per CPU-second of the server, each round
    cpu_ratios: list[float] = []
    idle_cpu = [0.0, 0.0]  # CPU seconds each server used while the other was loaded
    failed = 0  # non-2xx answers and socket errors
    with SinkProcess(sys.executable, cpu=load_cpu) as sink, tempfile.TemporaryDirectory() as work:
        servers: list[Any] = []
        try:
            for index, configuration in enumerate(pair):
                port = free_port()
                env = clean_environment(configuration.environment(sink.endpoint, service=f"paired-{configuration.key}"))
                server = AppServer(
                    configuration.server_command(args.app, port),
                    env,
                    port,
                    server_cpu,
                    Path(work) / f"{index}-{configuration.key}.log",
                )
                servers.append(server)  # before it starts: an interrupted start is still stopped
                server.start(args.path)
            for server in servers:
                run_wrk(server.base_url + args.path, args.warmup, cpu=load_cpu)
            for round_number in range(args.rounds):
                order = [0, 1] if round_number % 2 == 0 else [1, 0]
                got: dict[int, float] = {}
                efficiency: dict[int, float] = {}
                if args.together:
                    loads, used = _load_together(servers, args.path, args.seconds, load_cpu, run_wrk)
                else:
                    loads, used = {}, {}
                    for index in order:
                        other = servers[1 - index]
                        before = _cpu_seconds(other.pid), _cpu_seconds(servers[index].pid)
                        loads[index] = run_wrk(servers[index].base_url + args.path, args.seconds, cpu=load_cpu)
                        idle_cpu[1 - index] += _cpu_seconds(other.pid) - before[0]
                        used[index] = _cpu_seconds(servers[index].pid) - before[1]
                for index, load in loads.items():
                    if load.rps <= 0:
                        raise SystemExit(f"{pair[index].key} served nothing in round {round_number + 1}")
                    failed += load.non_2xx + load.socket_errors
                    got[index] = load.rps
                    rps[index].append(load.rps)
                    efficiency[index] = load.requests / used[index] if used[index] > 0 else 0.0
                    per_cpu[index].append(efficiency[index])
                ratio = got[1] / got[0]
                ratios.append(ratio)
                cpu_ratio = efficiency[1] / efficiency[0] if efficiency[0] > 0 else 0.0
                cpu_ratios.append(cpu_ratio)
                first_label = "both at once" if args.together else f"{pair[order[0]].key} first"
                print(
                    f"round {round_number + 1} ({first_label}): {pair[0].key} {got[0]:,.0f} req/s "
                    f"({efficiency[0]:,.0f} per CPU-second), {pair[1].key} {got[1]:,.0f} req/s "
                    f"({efficiency[1]:,.0f}), ratio {ratio:.3f}, per CPU-second {cpu_ratio:.3f}",
                    flush=True,
                )
        finally:
            for server in servers:
                server.stop()
    first, second = (statistics.median(values) for values in rps)
    loaded = args.rounds * args.seconds
    how = "rounds with both loaded at once" if args.together else "alternating rounds"
    print(f"\n{args.path}, {args.rounds} {how} of {args.seconds} s, both servers kept up:")
    print(
        f"{pair[1].key} / {pair[0].key}: median of the round ratios {statistics.median(ratios):.2f}x "
        f"(rounds {min(ratios):.2f}–{max(ratios):.2f}); ratio of the medians {second / first:.2f}x "
        f"({second:,.0f} / {first:,.0f} req/s)"
    )
    print(
        f"requests per CPU-second: median of the round ratios {statistics.median(cpu_ratios):.2f}x "
        f"(rounds {min(cpu_ratios):.2f}–{max(cpu_ratios):.2f}); ratio of the medians "
        f"{statistics.median(per_cpu[1]) / max(statistics.median(per_cpu[0]), 1e-9):.2f}x"
    )
    if not args.together:
        print(
            f"while the other was loaded, {pair[0].key} used {100 * idle_cpu[0] / loaded:.1f}% of a core and "
            f"{pair[1].key} {100 * idle_cpu[1] / loaded:.1f}%"
        )
    if failed:
        print(f"{failed:,} answers were errors or failed connections (non-2xx, socket errors); they count in req/s")
    return 0


def _load_together(
    servers: list[Any], path: str, seconds: int, load_cpu: int | None, run_wrk: Any
) -> tuple[dict[int, Any], dict[int, float]]:
    """Both servers loaded at once, each by its own wrk: their loads and the CPU seconds each used meanwhile."""
    import threading

    loads: dict[int, Any] = {}
    problems: list[BaseException] = []

    def load(index: int) -> None:
        try:
            loads[index] = run_wrk(servers[index].base_url + path, seconds, cpu=load_cpu)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            problems.append(exc)

    before = [_cpu_seconds(server.pid) for server in servers]
    threads = [threading.Thread(target=load, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    used = {index: _cpu_seconds(server.pid) - before[index] for index, server in enumerate(servers)}
    if problems:
        raise problems[0]
    return loads, used


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    raise SystemExit(main())
