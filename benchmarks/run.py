"""katcp-inspect against aiokatcp and the katcp-codec ceiling, on a noisy machine.

    python benchmarks/run.py [--runs N] [--quick] [--metrics abcdefijkl] [--profile CLIENT]
                             [--baseline REVISION]

Every client runs in a process of its own against flood devices in other processes; the
clients of a metric take turns within each run (the order rotates from run to run), and the
table gives medians over the runs, with ratios taken within each run. See README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import aiokatcp_device
import processes
import redis_mirror
import ways
from clients import Aiokatcp, KatcpInspect

KI = KatcpInspect.label
AIO = Aiokatcp.label
CEILING = "codec+dict"
CEILING_SOCKET = "codec+dict, socket"
CEILING_CORE = "codec core+dict"
#: Seconds one benchmark process may take (a fleet-scale one: SCALE_TIMEOUT).
PROCESS_TIMEOUT = 240.0
SCALE_TIMEOUT = 600.0
METRICS = "abcdefhijkl"


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes of the workloads; the defaults are the issue's, ``QUICK`` a smoke test."""

    runs: int = 5
    throughput_sensors: int = 1_000
    throughput_updates: int = 200_000
    sync_sensors: int = 10_000
    restart_sensors: int = 1_000
    restarts_per_run: int = 5
    fleet_devices: int = 200
    fleet_processes: int = 4
    fleet_sensors: int = 1_000
    fleet_updates_per_device: int = 1_000
    ways_sensors: int = 10_000
    #: (i)-(l): fleets of these many devices (the last, the full one, for (j)-(l)), each
    #: with ``scale_sensors`` sensors, in ``scale_processes`` device processes; at most
    #: ``scale_window`` syncing at a time; runs of their own (each takes minutes).
    scale_devices: tuple[int, ...] = (10, 100, 1_000)
    scale_sensors: int = 1_000
    scale_processes: int = 4
    scale_window: int = 100
    scale_flood_per_device: int = 200
    scale_stream_rate: int = 100_000
    scale_stream_seconds: float = 5.0
    scale_runs: int = 3
    quick: bool = False


QUICK = Plan(runs=1, throughput_updates=50_000, restarts_per_run=3, fleet_devices=20,
             fleet_processes=2, fleet_updates_per_device=500, ways_sensors=2_000,
             scale_devices=(5, 20), scale_sensors=200, scale_processes=2, scale_window=10,
             scale_stream_rate=4_000, scale_stream_seconds=1.5, scale_runs=1,
             quick=True)
#: The sizes issue 14's targets are set for (others, e.g. --quick, are smoke runs).
FULL = Plan()


@dataclasses.dataclass(frozen=True)
class Baseline:
    """Another katcp-inspect to measure beside this one: a label and where it is imported
    from (a directory holding its ``katcp_inspect``)."""

    label: str
    path: str


@dataclasses.dataclass
class Row:
    metric: str
    ki: str = ""
    aio: str = ""
    ceiling: str = ""
    ratio: str = ""
    target: str = ""
    met: str = ""


class Report:
    """Collects the table's rows and the problems the checks found."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.problems: list[str] = []


Result = dict[str, Any]


class Runs:
    """One metric's results, per run and per client; results whose checks failed are noted
    in the report once and left out of every median."""

    def __init__(self, metric: str, per_run: list[dict[str, Result]], report: Report) -> None:
        self.per_run = per_run
        for results in per_run:
            for label, result in results.items():
                if result.get("problem") is not None:
                    report.problems.append(f"{metric} {label}: {result['problem']}")

    def _good(self, label: str) -> list[Result]:
        return [run[label] for run in self.per_run if run[label].get("problem") is None]

    def median(self, label: str, key: str) -> float | None:
        values = [result[key] for result in self._good(label)]
        return statistics.median(values) if values else None

    def pooled_median(self, label: str, key: str) -> float | None:
        """The median of the samples (lists under ``key``) of every run."""
        values = [value for result in self._good(label) for value in result[key]]
        return statistics.median(values) if values else None

    def median_ratio(self, key: str, top: str, bottom: str, *,
                     less: str | None = None) -> float | None:
        """The median over runs of ``top / bottom`` (both from the same run); with ``less``,
        of ``top`` less its ``less`` over ``bottom``."""
        ratios = [(run[top][key] - (run[top][less] if less else 0)) / run[bottom][key]
                  for run in self.per_run
                  if run[top].get("problem") is None and run[bottom].get("problem") is None]
        return statistics.median(ratios) if ratios else None


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rotations(labels: Sequence[str], runs: int) -> Iterator[tuple[int, list[str]]]:
    """Each run's order of the clients: a different one first each time."""
    for run in range(runs):
        shift = run % len(labels)
        yield run, list(labels[shift:]) + list(labels[:shift])


def interleaved(metric: str, plan: Plan, jobs: dict[str, tuple[str, dict[str, Any]]],
                report: Report, *, runs: int | None = None, timeout: float = PROCESS_TIMEOUT,
                sources: dict[str, str] | None = None) -> Runs:
    """Run every job (label → scenario and its arguments) once per run, in rotating order;
    ``sources``: labels whose process imports katcp_inspect from elsewhere (a baseline)."""
    per_run = []
    runs = plan.runs if runs is None else runs
    for run, order in rotations(list(jobs), runs):
        results = {}
        for label in order:
            scenario, kwargs = jobs[label]
            results[label] = processes.run_scenario(scenario, kwargs, timeout,
                                                    (sources or {}).get(label))
            log(f"{metric} run {run + 1}/{runs} {label}: "
                + ", ".join(f"{k}={_short(v)}" for k, v in results[label].items()
                            if k != "profile"))
        per_run.append(results)
    return Runs(metric, per_run, report)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and value and isinstance(value[0], float):
        return "[" + ", ".join(f"{v:.3g}" for v in value) + "]"
    return str(value)


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def _fmt(value: float | None, unit: Callable[[float], str]) -> str:
    return "failed" if value is None else unit(value)


def rate(value: float) -> str:
    return f"{value / 1000:,.0f} k/s"


def seconds(value: float) -> str:
    return f"{value:.3f} s"


def size(value: float) -> str:
    return f"{value:,.0f} B"


def mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def times(value: float) -> str:
    return f"{value:.2f}x"


def percent(value: float) -> str:
    return f"{value:.1%}"


def milliseconds(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def microseconds(value: float) -> str:
    return f"{value * 1e6:.1f} µs"


# ---------------------------------------------------------------------- the metrics


def metric_throughput(plan: Plan, port: int, report: Report,
                      baseline: Baseline | None = None) -> None:
    sizes: dict[str, Any] = {"sensors": plan.throughput_sensors,
                             "updates": plan.throughput_updates}
    args = {"port": port, **sizes}
    jobs = {
        KI: ("throughput", {"client_name": KI, **args}),
        AIO: ("throughput", {"client_name": AIO, **args}),
        CEILING: ("ceiling", sizes),
        CEILING_SOCKET: ("ceiling-socket", args),
        CEILING_CORE: ("ceiling", {**sizes, "core": True}),
    }
    if baseline is not None:
        jobs[baseline.label] = ("throughput", {"client_name": KI, **args})
    runs = interleaved("(a)", plan, jobs, report,
                       sources=None if baseline is None else {baseline.label: baseline.path})
    vs_aio = runs.median_ratio("rate", KI, AIO)
    vs_ceiling = runs.median_ratio("rate", CEILING, KI)
    vs_core = runs.median_ratio("rate", CEILING_CORE, KI)
    report.rows.append(Row(
        f"(a) updates/s, {plan.throughput_sensors:,} sensors, {plan.throughput_updates:,} "
        "updates", _fmt(runs.median(KI, "rate"), rate), _fmt(runs.median(AIO, "rate"), rate),
        f"{_fmt(runs.median(CEILING, 'rate'), rate)} (over a socket: "
        f"{_fmt(runs.median(CEILING_SOCKET, 'rate'), rate)}; with the core parser: "
        f"{_fmt(runs.median(CEILING_CORE, 'rate'), rate)})",
        f"katcp-inspect ÷ aiokatcp = {_fmt(vs_aio, times)}", "≥ 3x",
        _met(None if vs_aio is None else vs_aio >= 3)))
    report.rows.append(Row(
        "", "", "", "", f"ceiling ÷ katcp-inspect = {_fmt(vs_ceiling, times)}", "≤ 2x",
        _met(None if vs_ceiling is None else vs_ceiling <= 2)))
    report.rows.append(Row(
        "", "", "", "", f"core-parser ceiling ÷ katcp-inspect = {_fmt(vs_core, times)}",
        "(reference)"))
    if baseline is not None:
        _baseline_row(report, runs, "(a)", baseline, "rate", rate)


def metric_sync(plan: Plan, port: int, report: Report,
                baseline: Baseline | None = None) -> None:
    args = {"port": port, "sensors": plan.sync_sensors}
    jobs = {label: ("sync", {"client_name": label, **args}) for label in (KI, AIO)}
    if baseline is not None:
        jobs[baseline.label] = ("sync", {"client_name": KI, **args})
    runs = interleaved("(b)", plan, jobs, report,
                       sources=None if baseline is None else {baseline.label: baseline.path})
    ratio = runs.median_ratio("seconds", KI, AIO)
    report.rows.append(Row(
        f"(b) full sync of {plan.sync_sensors:,} sensors",
        _fmt(runs.median(KI, "seconds"), seconds), _fmt(runs.median(AIO, "seconds"), seconds),
        "", f"katcp-inspect ÷ aiokatcp = {_fmt(ratio, times)}", "≤ 0.5x",
        _met(None if ratio is None else ratio <= 0.5)))
    if baseline is not None:
        _baseline_row(report, runs, "(b)", baseline, "seconds", seconds)
    report.rows.append(Row(
        "(c) for reference: RSS growth per sensor in (b), after gc",
        _fmt(runs.median(KI, "rss_per_sensor"), size),
        _fmt(runs.median(AIO, "rss_per_sensor"), size), "", "", "(reference)"))


def _baseline_row(report: Report, runs: Runs, metric: str, baseline: Baseline, key: str,
                  unit: Callable[[float], str]) -> None:
    """This code against ``baseline``'s in the same run: no more than 5 % slower (a ``rate``
    at least 0.95x, ``seconds`` at most 1.05x)."""
    ratio = runs.median_ratio(key, KI, baseline.label)
    rates = key == "rate"
    report.rows.append(Row(
        f"{metric} … the same with {baseline.label}",
        _fmt(runs.median(baseline.label, key), unit), "", "",
        f"katcp-inspect ÷ baseline = {_fmt(ratio, times)}",
        "≥ 0.95x (no slower)" if rates else "≤ 1.05x (no slower)",
        _met(None if ratio is None else (ratio >= 0.95 if rates else ratio <= 1.05))))


def metric_memory(plan: Plan, port: int, report: Report) -> None:
    args = {"port": port, "sensors": plan.sync_sensors}
    runs = interleaved("(c)", plan, {label: ("memory", {"client_name": label, **args})
                                     for label in (KI, AIO)}, report)
    held = {label: runs.median(label, "per_sensor") for label in (KI, AIO)}
    cells = {label: f"{_fmt(held[label], size)} (peak "
                    f"{_fmt(runs.median(label, 'peak_per_sensor'), size)})"
             for label in (KI, AIO)}
    ratio = runs.median_ratio("per_sensor", KI, AIO)
    ki = held[KI]
    report.rows.append(Row(
        f"(c) memory per cached sensor, {plan.sync_sensors:,} synced (tracemalloc, after gc)",
        cells[KI], cells[AIO], "", f"katcp-inspect ÷ aiokatcp = {_fmt(ratio, times)}",
        "≤ 1,024 B", _met(None if ki is None else ki <= 1024)))


def metric_restart(plan: Plan, port: int, report: Report) -> None:
    args = {"port": port, "sensors": plan.restart_sensors, "restarts": plan.restarts_per_run}
    runs = interleaved("(d)", plan, {label: ("restart", {"client_name": label, **args})
                                     for label in (KI, AIO)}, report)
    ki = runs.pooled_median(KI, "samples")
    report.rows.append(Row(
        f"(d) device restart → synced with fresh values, {plan.restart_sensors:,} sensors "
        f"(median of {plan.runs * plan.restarts_per_run} restarts)",
        _fmt(ki, seconds), _fmt(runs.pooled_median(AIO, "samples"), seconds), "", "",
        "≤ 0.15 s", _met(None if ki is None else ki <= 0.15)))


def metric_fleet(plan: Plan, report: Report) -> None:
    per_process = -(-plan.fleet_devices // plan.fleet_processes)
    sizes = [min(per_process, plan.fleet_devices - start)
             for start in range(0, plan.fleet_devices, per_process)]
    spec = (plan.fleet_sensors, plan.fleet_updates_per_device)
    with contextlib.ExitStack() as stack:
        groups = [stack.enter_context(processes.Devices([spec] * n)) for n in sizes]
        ports = [port for group in groups for port in group.ports]
        runs = interleaved("(e)", plan, {KI: ("fleet", {
            "client_name": KI, "ports": ports, "sensors": plan.fleet_sensors,
            "updates": plan.fleet_updates_per_device})}, report)
    sync = runs.median(KI, "sync_seconds")
    report.rows.append(Row(
        f"(e) {plan.fleet_devices} devices x {plan.fleet_sensors:,} sensors "
        f"({len(groups)} device processes), one client process: all synced",
        _fmt(sync, seconds), "", "", "", "≤ 10 s", _met(None if sync is None else sync <= 10)))
    report.rows.append(Row(
        f"(e) … then {plan.fleet_updates_per_device:,} updates from every device at once",
        _fmt(runs.median(KI, "rate"), rate), "", "", "", "(reference)"))


def _spread(ports: list[int], count: int) -> list[int]:
    """``count`` of ``ports``, spread evenly (so over every device process)."""
    step = len(ports) / count
    return [ports[int(i * step)] for i in range(count)]


def _scale_jobs(plan: Plan, ports: list[int], single_port: int, metrics: str,
                baseline: Baseline | None) -> tuple[dict[str, tuple[str, dict[str, Any]]],
                                                    dict[str, str]]:
    """The processes of (i)-(l) (label → scenario and arguments), and the labels that
    import the baseline."""
    base: dict[str, Any] = {"sensors": plan.scale_sensors, "window": plan.scale_window}
    flow = {"ports": ports, **base, "flood_per_device": plan.scale_flood_per_device,
            "stream_rate": plan.scale_stream_rate,
            "stream_seconds": plan.scale_stream_seconds}
    jobs: dict[str, tuple[str, dict[str, Any]]] = {}
    if "i" in metrics:
        for count in plan.scale_devices[:-1]:
            jobs[f"sync {count}"] = ("fleet-sync", {"ports": _spread(ports, count), **base})
    if set(metrics) & set("ikl"):  # the full fleet's process measures all three
        jobs["flow"] = ("fleet-flow", flow)
    if "l" in metrics:
        jobs["flow, gc.freeze()"] = ("fleet-flow", {**flow, "freeze": True})
    if "k" in metrics:
        jobs["single device"] = ("throughput", {
            "client_name": KI, "port": single_port, "sensors": plan.scale_sensors,
            "updates": plan.scale_flood_per_device * len(ports)})
    if "j" in metrics:
        jobs["memory"] = ("fleet-memory", {"ports": ports, **base})
    sources = {}
    if baseline is not None:
        for label in ("flow", "memory"):
            if label in jobs:
                jobs[f"{label}, {baseline.label}"] = jobs[label]
                sources[f"{label}, {baseline.label}"] = baseline.path
    return jobs, sources


def metric_scale(plan: Plan, metrics: str, report: Report, runs: int,
                 baseline: Baseline | None) -> None:
    """(i)-(l): a fleet of devices, each with its sensors, in one client process (see
    scale.py)."""
    devices = plan.scale_devices[-1]
    per_process = -(-devices // plan.scale_processes)
    spec = (plan.scale_sensors, plan.scale_flood_per_device)
    with contextlib.ExitStack() as stack:
        groups = [stack.enter_context(processes.Devices(
            [spec] * min(per_process, devices - start)
            + ([(plan.scale_sensors, plan.scale_flood_per_device * devices)] if not start
               else []))) for start in range(0, devices, per_process)]
        single_port = groups[0].ports[-1]
        ports = [port for group in groups for port in group.ports if port != single_port]
        jobs, sources = _scale_jobs(plan, ports, single_port, metrics, baseline)
        results = interleaved("(i-l)", plan, jobs, report, runs=runs, timeout=SCALE_TIMEOUT,
                              sources=sources)
    full = (plan.scale_devices[-1], plan.scale_sensors, plan.scale_stream_rate) == (
        FULL.scale_devices[-1], FULL.scale_sensors, FULL.scale_stream_rate)
    where = f"{devices:,} devices x {plan.scale_sensors:,} sensors"
    if "i" in metrics:
        _rows_sync(plan, results, report, full, baseline)
    if "j" in metrics:
        _rows_memory(results, report, where, full, baseline)
    if "k" in metrics:
        _rows_throughput(plan, results, report, where, full)
    if "l" in metrics:
        _rows_latency(plan, results, report, where, full, baseline)


def _target(ok: bool | None, full: bool) -> str:
    return _met(ok) if full else "n/a (not the issue's sizes)"


def _rows_sync(plan: Plan, runs: Runs, report: Report, full: bool,
               baseline: Baseline | None) -> None:
    labels = [f"sync {n}" for n in plan.scale_devices[:-1]] + ["flow"]
    per = {label: runs.median(label, "per_sensor") for label in labels}
    for count, label in zip(plan.scale_devices, labels):
        total = runs.median(label, "seconds")
        last = label == "flow"
        report.rows.append(Row(
            f"(i) sync of {count:,} devices x {plan.scale_sensors:,} sensors, all sampled "
            f"with their values (at most {plan.scale_window} syncing at a time)",
            f"{_fmt(total, seconds)} ({_fmt(per[label], microseconds)}/sensor)", "", "",
            "", "≤ 30 s" if last else "(curve)",
            _target(None if total is None else total <= 30, full) if last else ""))
    first, end = per[labels[0]], per["flow"]
    growth = None if first is None or end is None else end / first
    report.rows.append(Row(
        "(i) … time per sensor, largest fleet ÷ smallest", "", "", "",
        f"{_fmt(growth, times)}", "≤ 1.25x (does not grow)",
        _met(None if growth is None else growth <= 1.25)))
    for label, name in [("flow", "katcp-inspect")] + (
            [] if baseline is None else [(f"flow, {baseline.label}", baseline.label)]):
        report.rows.append(Row(
            f"(i) … share of the CPU in the cyclic collector during the largest sync: {name}",
            f"{_fmt(runs.median(label, 'gc_share'), percent)} of "
            f"{_fmt(runs.median(label, 'cpu_seconds'), seconds)} CPU; sync "
            f"{_fmt(runs.median(label, 'seconds'), seconds)}; RSS +"
            f"{_fmt(runs.median(label, 'rss_per_sensor'), size)}/sensor", "", "", "",
            "(before/after)"))


def _rows_memory(runs: Runs, report: Report, where: str, full: bool,
                 baseline: Baseline | None) -> None:
    held = runs.median("memory", "per_sensor")
    report.rows.append(Row(
        f"(j) memory per cached sensor, {where} synced (tracemalloc, after gc)",
        f"{_fmt(held, size)} (peak {_fmt(runs.median('memory', 'peak_per_sensor'), size)})",
        "", "", "", "≤ 1,024 B", _target(None if held is None else held <= 1024, full)))
    if baseline is not None:
        label = f"memory, {baseline.label}"
        report.rows.append(Row(
            f"(j) … the same with {baseline.label}",
            f"{_fmt(runs.median(label, 'per_sensor'), size)} (peak "
            f"{_fmt(runs.median(label, 'peak_per_sensor'), size)})", "", "",
            f"katcp-inspect ÷ baseline = "
            f"{_fmt(runs.median_ratio('per_sensor', 'memory', label), times)}",
            "(reference)"))


def _rows_throughput(plan: Plan, runs: Runs, report: Report, where: str,
                     full: bool) -> None:
    ratio = runs.median_ratio("rate", "flow", "single device")
    report.rows.append(Row(
        f"(k) updates/s into the cache and one observer per sensor: {where}, "
        f"{plan.scale_flood_per_device} from every device at once",
        _fmt(runs.median("flow", "rate"), rate), "",
        f"one device, the same {plan.scale_flood_per_device * plan.scale_devices[-1]:,} "
        f"updates: {_fmt(runs.median('single device', 'rate'), rate)}",
        f"fleet ÷ one device = {_fmt(ratio, times)}", "≥ 0.70x",
        _target(None if ratio is None else ratio >= 0.7, full)))


def _rows_latency(plan: Plan, runs: Runs, report: Report, where: str, full: bool,
                  baseline: Baseline | None) -> None:
    variants = [("flow", "katcp-inspect"), ("flow, gc.freeze()", "… with gc.freeze() once "
                                                                  "synced (an application's "
                                                                  "choice)")]
    if baseline is not None:
        variants.append((f"flow, {baseline.label}", f"… {baseline.label}"))
    for label, name in variants:
        p99 = runs.median(label, "p99")
        report.rows.append(Row(
            f"(l) device write → observer call at {plan.scale_stream_rate:,} updates/s over "
            f"{where}, an observer on every sensor: {name}",
            f"p50 {_fmt(runs.median(label, 'p50'), milliseconds)}, p99 "
            f"{_fmt(p99, milliseconds)} (observed {_fmt(runs.median(label, 'observed_rate'), rate)}"
            f"; collector {_fmt(runs.median(label, 'stream_gc_seconds'), seconds)})", "", "",
            "", "p99 ≤ 20 ms", _target(None if p99 is None else p99 <= 0.020, full)))


def metric_ways(plan: Plan, report: Report) -> None:
    """(f) each documented way to a synced model against a device built on aiokatcp, beside
    the device's floor and aiokatcp; (g) looking up every sensor afterwards."""
    sensors = plan.ways_sensors
    with processes.Devices([(sensors, 0)], serve=aiokatcp_device.serve) as device:
        args = {"port": device.ports[0], "sensors": sensors}
        labels = (*ways.WAYS, "aiokatcp",
                  *(way + ways.TRACED for way in ways.WAYS if way != "auto"))
        runs = interleaved("(f)", plan, {label: ("way", {"kind": label, **args})
                                         for label in labels}, report)
    # Every timed process measured the floor first, both ways of asking: the floor is the
    # faster way by its median over all of them, and each ratio uses its own process's floor.
    timed = [run[label] for run in runs.per_run for label in (*ways.WAYS, "aiokatcp")
             if run[label].get("problem") is None]
    medians = {key: statistics.median(r[key] for r in timed) if timed else None
               for key in ("floor", "floor_chunked")}
    faster = min(medians, key=lambda key: medians[key] or float("inf"))
    for run in runs.per_run:
        for result in run.values():
            if faster in result:
                result["vs_floor"] = result["seconds"] / result[faster]
    report.rows.append(Row(
        f"(f) device floor: ?help and ?sensor-list, then ?sensor-sampling of all {sensors:,} "
        "sensors with their values, lines counted (an aiokatcp DeviceServer)", "", "",
        f"{_fmt(medians[faster], seconds)} (one bulk request: "
        f"{_fmt(medians['floor'], seconds)}; chunks of 500: "
        f"{_fmt(medians['floor_chunked'], seconds)})", "", "(reference)"))
    for way in ways.WAYS:
        vs_floor = runs.median(way, "vs_floor")
        cell = (f"{_fmt(runs.median(way, 'seconds'), seconds)}; RSS +"
                f"{_fmt(runs.median(way, 'rss'), mib)} (peak +"
                f"{_fmt(runs.median(way, 'peak_rss'), mib)})")
        report.rows.append(Row(
            f"(f) full sync, {sensors:,} sensors sampled with their values: {way}", cell,
            "", "", f"÷ floor = {_fmt(vs_floor, times)}", "≤ 1.15x",
            _met(None if vs_floor is None else vs_floor <= 1.15)))
        traced = way + ways.TRACED
        if way != "auto":
            report.rows.append(Row(
                "(f) … its Python heap once synced (tracemalloc, after gc), and its peak",
                f"{_fmt(runs.median(traced, 'held'), mib)} (peak "
                f"{_fmt(runs.median(traced, 'peak'), mib)})"))
        if way == "per-sensor":
            own = runs.median(way, "callers_own")
            own_peak = runs.median(way + ways.TRACED, "callers_own_peak")
            report.rows.append(Row(
                "(f) … of which the caller's own asyncio work, with any library: gathering "
                f"{sensors:,} done futures, then {sensors:,} futures resolved 500 at a time",
                f"{_fmt(own, seconds)}; heap peak {_fmt(own_peak, mib)}", "", "", "",
                "(reference)"))
        if way.startswith("per-"):
            for label, key, what in ((way, "seconds", "time"), (traced, "held", "memory"),
                                     (traced, "peak", "peak memory")):
                base = "bulk" if label == way else "bulk" + ways.TRACED
                ratio = runs.median_ratio(key, label, base)
                report.rows.append(Row(
                    "", "", "", "", f"{what} ÷ bulk = {_fmt(ratio, times)}",
                    "≤ 1.1x" if key != "peak" else "(reference)",
                    _met(None if ratio is None else ratio <= 1.1) if key != "peak" else ""))
            if way == "per-sensor":
                ratio = runs.median_ratio("peak", traced, "bulk" + ways.TRACED,
                                          less="callers_own_peak")
                report.rows.append(Row("", "", "", "", "peak memory less the caller's own ÷ "
                                       f"bulk = {_fmt(ratio, times)}", "(reference)"))
    aio_vs_floor = runs.median("aiokatcp", "vs_floor")
    report.rows.append(Row(
        "(f) aiokatcp's SensorWatcher, same sync", "",
        f"{_fmt(runs.median('aiokatcp', 'seconds'), seconds)}; RSS +"
        f"{_fmt(runs.median('aiokatcp', 'rss'), mib)}", "",
        f"÷ floor = {_fmt(aio_vs_floor, times)}", "(reference)"))
    per = {key: runs.median("auto", key) for key in ("lookup", "dict_lookup", "future_lookup")}
    ratios = [run["auto"]["lookup"] / run["auto"]["future_lookup"] for run in runs.per_run
              if run["auto"].get("problem") is None]
    vs_future = statistics.median(ratios) if ratios else None
    report.rows.append(Row(
        f"(g) future_get_sensor(name).result() for {sensors:,} known names",
        _fmt(per["lookup"], seconds), _fmt(runs.median("aiokatcp", "lookup"), seconds)
        + " (its dict)", f"dict: {_fmt(per['dict_lookup'], seconds)}; dict + a done future: "
        f"{_fmt(per['future_lookup'], seconds)}",
        f"÷ dict + done future = {_fmt(vs_future, times)}", "(reference)"))


# ---------------------------------------------------------------------- machine and output


def machine() -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = ", ".join(f"{package} {_version(package)}"
                         for package in ("katcp-inspect", "aiokatcp", "katcp-codec", "tornado"))
    import katcp_inspect.codec

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"CPU: {cpu}, {os.cpu_count()} cores; load average at start: {load}",
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        f"Packages: {versions}",
        f"katcp-inspect commit: {_commit()}; katcp-codec core parser in use: "
        f"{katcp_inspect.codec.FAST}",
    ]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def table(rows: list[Row]) -> str:
    header = Row("Metric", KI, AIO, "ceiling (a) or floor (f, g)", "ratio (median of runs)",
                 "target", "met?")
    lines = []
    for i, row in enumerate([header, *rows]):
        lines.append("| " + " | ".join(dataclasses.astuple(row)) + " |")
        if i == 0:
            lines.append("|" + "---|" * len(dataclasses.fields(Row)))
    return "\n".join(lines)


def print_profile(label: str, result: dict[str, Any], per: float, unit: str) -> None:
    print(f"\n{label}: {result.get('problem') or 'checks passed'}; measured section "
          f"{result.get('seconds', 0):.3f} s under cProfile")
    print(f"| own µs/{unit} | cumulative µs/{unit} | calls | function |\n|---|---|---|---|")
    for row in result.get("profile", []):
        print(f"| {row['tottime'] / per * 1e6:.3f} | {row['cumtime'] / per * 1e6:.3f} | "
              f"{row['ncalls']:,} | `{row['function']}` |")


def profile(plan: Plan, client: str, ports: list[int]) -> None:
    """Profile one client's measured sections of (a) and (b) instead of benchmarking."""
    result = processes.run_scenario("throughput", {
        "client_name": client, "port": ports[0], "sensors": plan.throughput_sensors,
        "updates": plan.throughput_updates, "profile": True}, PROCESS_TIMEOUT)
    print_profile(f"(a) {client}, {plan.throughput_updates:,} updates", result,
                  plan.throughput_updates, "update")
    result = processes.run_scenario("sync", {
        "client_name": client, "port": ports[1], "sensors": plan.sync_sensors,
        "profile": True}, PROCESS_TIMEOUT)
    print_profile(f"(b) {client}, sync of {plan.sync_sensors:,} sensors", result,
                  plan.sync_sensors, "sensor")


def resolve_baseline(revision: str, stack: contextlib.ExitStack) -> Baseline:
    """A directory holding a ``katcp_inspect`` as is, or a git revision of this repository,
    extracted (``git archive``) into a temporary directory for as long as ``stack`` lasts."""
    if Path(revision, "katcp_inspect").is_dir():
        return Baseline(f"baseline {revision}", str(Path(revision).resolve()))
    where = stack.enter_context(tempfile.TemporaryDirectory(prefix="katcp-inspect-baseline-"))
    repository = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "archive", revision, "katcp_inspect"], cwd=repository,
                             capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", where], input=archive, check=True, timeout=60)
    return Baseline(f"baseline {revision}", where)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, help="runs per metric (default 5, for i-l 3; "
                                                 "1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run with smaller workloads, in about a minute")
    parser.add_argument("--metrics", default=METRICS,
                        help=f"which metrics to run, e.g. 'ab' (default: {METRICS}; "
                             "f includes g)")
    parser.add_argument("--profile", choices=[KI, AIO],
                        help="instead of the table, profile this client's (a) and (b) "
                             "with cProfile and list the functions with the most own time")
    parser.add_argument("--baseline", metavar="REVISION",
                        help="also measure (a), (b) and (i)-(l) with the katcp_inspect of this "
                             "git revision (or of a directory holding one), in the same run")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.runs is not None:
        if args.runs < 1:
            parser.error("--runs must be at least 1")
        plan = dataclasses.replace(plan, runs=args.runs, scale_runs=args.runs)
    if set(args.metrics) - set(METRICS):
        parser.error(f"--metrics takes letters from '{METRICS}'")

    print("\n".join(machine()))
    print(f"Command: python benchmarks/run.py {' '.join(argv or sys.argv[1:])}".rstrip())
    started = time.monotonic()
    report = Report()
    with contextlib.ExitStack() as stack:
        baseline = None if args.baseline is None else resolve_baseline(args.baseline, stack)
        if not run_metrics(plan, args.metrics, args.profile, baseline, report):
            return 0
    scale_runs = f" ({plan.scale_runs} for i-l)" if set(args.metrics) & set("ijkl") else ""
    print(f"\nMedians of {plan.runs} run(s){scale_runs}; took "
          f"{time.monotonic() - started:.0f} s.\n")
    print(table(report.rows))
    for problem in report.problems:
        print(f"\nCHECK FAILED: {problem}")
    return 1 if report.problems else 0


def run_metrics(plan: Plan, metrics: str, profile_client: str | None,
                baseline: Baseline | None, report: Report) -> bool:
    """Run the metrics asked for into ``report``; False if a profile was printed instead."""
    specs = [(plan.throughput_sensors, plan.throughput_updates), (plan.sync_sensors, 0),
             (plan.restart_sensors, 0)]
    with processes.Devices(specs) as devices:
        throughput_port, sync_port, restart_port = devices.ports
        if profile_client:
            profile(plan, profile_client, [throughput_port, sync_port])
            return False
        if "a" in metrics:
            metric_throughput(plan, throughput_port, report, baseline)
        if "b" in metrics:
            metric_sync(plan, sync_port, report, baseline)
        if "c" in metrics:
            metric_memory(plan, sync_port, report)
        if "d" in metrics:
            metric_restart(plan, restart_port, report)
    if "e" in metrics:
        metric_fleet(plan, report)
    if "f" in metrics:
        metric_ways(plan, report)
    if "h" in metrics:
        for what, measured, target, met in redis_mirror.metric(plan.quick):
            report.rows.append(Row(what, ki=measured, target=target, met=met))
            if met == "NO":
                report.problems.append(f"{what}: {measured}, target {target}")
    scale = "".join(letter for letter in metrics if letter in "ijkl")
    if scale:
        metric_scale(plan, scale, report, plan.scale_runs, baseline)
    return True


if __name__ == "__main__":
    sys.exit(main())
