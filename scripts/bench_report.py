#!/usr/bin/python3
# SPDX-License-Identifier: AGPL-3.0-or-later
"""Report side of the side-by-side benchmark (scripts/bench.sh, issue 4).

`bench_report.py machine` prints the machine's description as JSON (CPUs, memory, CPU model,
kernel, distribution) for the results directory. `bench_report.py report RESULTS OUT SUMMARY`
reads a results directory written by bench.sh (runs.jsonl: one object per kurier-bench run
with the server, workload, round, exit status, exact command and kurier-bench's own JSON line;
versions.tsv, machine.json, settings.txt, server-commands.txt, unavailable.tsv) and writes the
Markdown report OUT (docs/PERFORMANCE.md) and a small JSON summary SUMMARY. It owns only the
arithmetic: medians and min-max over the valid runs of each workload and server, and the
ratios of Kurier's median to the others'. Invalid runs are never averaged in; they are counted
and their first error shown. Nothing here measures anything.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path

SERVERS = [("kurier", "Kurier"), ("ejabberd", "ejabberd"), ("prosody", "Prosody")]


def _lat(key):
    return lambda r: r["results"][key]["p50"] / 1000.0


def _pct(key, pct):
    return lambda r: r["results"][key][pct] / 1000.0


def _srv(key, scale=1.0):
    return lambda r: r["server"][key] * scale


# workload -> (title, [(metric, extractor, unit, better)])
METRICS = {
    "msg": ("Message throughput (msg, full load)", [
        ("delivered msg/s", lambda r: r["results"]["msgs_per_s"], "msg/s", "higher"),
        ("latency p50", _pct("latency_us", "p50"), "ms", "lower"),
        ("latency p99", _pct("latency_us", "p99"), "ms", "lower"),
        ("server CPU per delivered message", _srv("cpu_us_per_msg"), "µs", "lower"),
        ("server CPU in the window", lambda r: r["server"]["cpu_s"] / r["results"]["measured_s"],
         "cores", "—"),
        ("server RSS after the run", _srv("rss_kib", 1 / 1024), "MiB", "lower"),
    ]),
    "msg-half": ("Message latency at half of Kurier's peak rate (msg, open loop, --msg-rate)", [
        ("offered load", lambda r: r["results"]["msg_rate"], "msg/s", "—"),
        ("delivered msg/s", lambda r: r["results"]["msgs_per_s"], "msg/s", "higher"),
        ("latency p50", _pct("latency_us", "p50"), "ms", "lower"),
        ("latency p90", _pct("latency_us", "p90"), "ms", "lower"),
        ("latency p99", _pct("latency_us", "p99"), "ms", "lower"),
        ("latency max", _pct("latency_us", "max"), "ms", "lower"),
        ("generator's send lag p99", _pct("send_lag_us", "p99"), "ms", "lower"),
        ("server CPU per delivered message", _srv("cpu_us_per_msg"), "µs", "lower"),
    ]),
    "msg-light": ("Message latency at light load (msg, 10 pairs x 1 in flight)", [
        ("delivered msg/s", lambda r: r["results"]["msgs_per_s"], "msg/s", "higher"),
        ("latency p50", _pct("latency_us", "p50"), "ms", "lower"),
        ("latency p99", _pct("latency_us", "p99"), "ms", "lower"),
        ("server CPU per delivered message", _srv("cpu_us_per_msg"), "µs", "lower"),
    ]),
    "login": ("Logins (STARTTLS, SCRAM, bind, initial presence)", [
        ("logins/s", lambda r: r["results"]["logins_per_s"], "logins/s", "higher"),
        ("login latency p50", _pct("latency_us", "p50"), "ms", "lower"),
        ("login latency p99", _pct("latency_us", "p99"), "ms", "lower"),
        ("server CPU per login", lambda r: r["server"]["cpu_s"] * 1000.0 / r["results"]["ok"],
         "ms", "lower"),
    ]),
    "idle": ("Idle authenticated connections", [
        ("memory per idle connection", _srv("kib_per_conn"), "KiB", "lower"),
        ("server RSS with all connected", _srv("rss_kib", 1 / 1024), "MiB", "lower"),
        ("connections up", lambda r: r["results"]["up"], "conns", "higher"),
        ("connect-to-bound p50 during the ramp", _pct("connect_us", "p50"), "ms", "lower"),
        ("server CPU over the hold", _srv("cpu_s", 1000.0), "ms", "lower"),
    ]),
    "presence": ("Presence fan-out (one user's initial presence to R online contacts)", [
        ("latency p50", _pct("latency_us", "p50"), "ms", "lower"),
        ("latency p99", _pct("latency_us", "p99"), "ms", "lower"),
        ("latency to the last contact", _pct("latency_us", "max"), "ms", "lower"),
        ("server CPU (user start to end)", _srv("cpu_s", 1000.0), "ms", "lower"),
    ]),
}


# ------------------------------------------------------------------ machine

def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def machine() -> dict:
    cpuinfo = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    mem_kib = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                    if line.startswith("MemTotal:")), 0)
    osrel = dict(line.split("=", 1) for line in _read("/etc/os-release").splitlines()
                 if "=" in line)
    uname = os.uname()
    return {"nproc": os.cpu_count(), "mem_gib": round(mem_kib / 1048576, 1), "cpu_model": model,
            "kernel": "%s %s" % (uname.sysname, uname.release), "kernel_version": uname.version,
            "distribution": osrel.get("PRETTY_NAME", "").strip('"'),
            "open_files_limit": _nofile()}


def _nofile():
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return {"soft": soft, "hard": hard}
    except (ImportError, OSError):
        return None


# ------------------------------------------------------------------ report

def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 1000:
        return "{:,.0f}".format(v).replace(",", " ")
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3f" % v


def _load(results: Path):
    runs = []
    for line in (results / "runs.jsonl").read_text().splitlines():
        if line.strip():
            runs.append(json.loads(line))
    return runs


def _stats(runs, server, workload, extract):
    mine = [r for r in runs if r["server"] == server and r["workload"] == workload]
    ok = [r for r in mine if r.get("result") and r["result"].get("valid")]
    values = []
    for r in ok:
        try:
            v = extract(r["result"])
        except (KeyError, TypeError, ZeroDivisionError):
            continue
        if v is None or v != v:   # NaN (e.g. kib_per_conn with nothing alive)
            continue
        values.append(float(v))
    errors = [(r["result"] or {}).get("first_error") or r.get("note") or "exit %d" % r["exit"]
              for r in mine if r not in ok]
    st = {"runs": len(mine), "valid": len(ok), "values": values, "errors": errors}
    if values:
        st.update(median=statistics.median(values), min=min(values), max=max(values))
    return st


def _cell(st) -> str:
    if not st["runs"]:
        return "not run"
    if "median" not in st:
        err = st["errors"][0] if st["errors"] else "no value"
        return "— (0/%d valid: %s)" % (st["runs"], err.replace("|", "/")[:80])
    s = "**%s**" % _fmt(st["median"])
    if len(st["values"]) > 1:
        s += " (%s–%s)" % (_fmt(st["min"]), _fmt(st["max"]))
    if st["valid"] < st["runs"]:
        s += " [%d/%d valid]" % (st["valid"], st["runs"])
    return s


def _ratio(a, b) -> str:
    if "median" not in a or "median" not in b or b["median"] == 0 or a["median"] == 0:
        return "—"
    return "%.2f" % (a["median"] / b["median"])


def _tsv(path: Path) -> list:
    if not path.exists():
        return []
    return [line.split("\t", 1) for line in path.read_text().splitlines() if "\t" in line]


def _setting(settings: str, key: str) -> str:
    m = re.search(r"(?:^|\s)%s=(\S*)" % re.escape(key), settings)
    return m.group(1) if m else ""


def _machine_note(settings: str, loads) -> list:
    """Where the load generator ran and how busy the machine was: read before any number."""
    pin = _setting(settings, "PIN")
    start = _setting(settings, "LOAD_AT_START")
    busy = ("1-minute load average when the benchmark started: %s; before each run, which "
            "includes the previous run's own load: %s–%s." %
            (start or "?", *((_fmt(min(loads)), _fmt(max(loads))) if loads else ("?", "?"))))
    if pin:
        srv, gen = pin.split("/", 1)
        return ["> **Pinned (PIN=%s).** Every server ran on CPU(s) %s with one thread per CPU "
                "there, kurier-bench on CPU(s) %s, so the load generator did not take CPU "
                "from the server it measured; each server had the same CPUs. %s"
                % (pin, srv, gen, busy)]
    return ["> **Load generator on the same cores.** kurier-bench ran on the same CPUs as the "
            "server, so every rate here is shared between them: a server that needs less CPU "
            "leaves more to the generator, and ratios between servers are capped by the "
            "generator's own cost (see `PIN`). %s" % busy]


def report(results: Path, out: Path, summary_path: Path) -> None:
    runs = _load(results)
    mach = json.loads(_read(str(results / "machine.json")) or "{}")
    versions = _tsv(results / "versions.tsv")
    down = dict(_tsv(results / "unavailable.tsv"))
    settings = _read(str(results / "settings.txt")).strip()
    starts = _read(str(results / "server-commands.txt")).strip()
    quick = "QUICK=1" in settings
    rounds = max([r["round"] for r in runs] or [0])
    workloads = [w for w in METRICS if any(r["workload"] == w for r in runs)]
    loads = [r.get("loadavg_before") for r in runs if r.get("loadavg_before") is not None]

    L = []
    L.append("<!-- SPDX-License-Identifier: AGPL-3.0-or-later -->")
    L.append("# Performance: Kurier, ejabberd and Prosody side by side")
    L.append("")
    L.append("Generated by `make bench` (scripts/bench.sh, then scripts/bench_report.py) from the "
             "results in `bench/results/%s/`. Do not edit by hand: rerun the benchmark." % results.name)
    L.append("")
    if quick:
        L.append("> **This is a QUICK=1 run** (small counts, short windows, %d round): it shows that "
                 "the harness works end to end, not how the servers compare. Run `make bench` "
                 "without QUICK for numbers." % rounds)
        L.append("")
    L.extend(_machine_note(settings, loads))
    L.append("")
    L.append("Cells: **median** (min–max) over %d interleaved round(s) (Kurier, ejabberd, Prosody, "
             "Kurier, ... for each workload). Only valid runs (kurier-bench `\"valid\": true`: no "
             "loss, no failed logins, all connections up) count; `[v/n valid]` shows when some "
             "were not. Ratios are Kurier's median divided by the other server's; whether more "
             "is better is in the *better* column." % rounds)
    L.append("")
    if down:
        L.append("**Not benchmarked:**")
        for s, why in down.items():
            L.append("- %s: %s" % (s, why))
        L.append("")

    summary = {"results_dir": results.name, "quick": quick, "rounds": rounds,
               "machine": mach, "versions": dict(versions), "unavailable": down, "table": {}}
    for w in workloads:
        title, metrics = METRICS[w]
        L.append("## %s" % title)
        L.append("")
        L.append("| metric | unit | better | Kurier | ejabberd | Prosody | Kurier/ejabberd | Kurier/Prosody |")
        L.append("|---|---|---|---|---|---|---|---|")
        summary["table"][w] = {}
        for name, extract, unit, better in metrics:
            st = {s: _stats(runs, s, w, extract) for s, _ in SERVERS}
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, unit, better, _cell(st["kurier"]), _cell(st["ejabberd"]),
                _cell(st["prosody"]), _ratio(st["kurier"], st["ejabberd"]),
                _ratio(st["kurier"], st["prosody"])))
            summary["table"][w][name] = {
                s: {k: v for k, v in st[s].items() if k in ("median", "min", "max", "valid", "runs")}
                for s, _ in SERVERS}
            summary["table"][w][name]["unit"] = unit
        errs = [(s, e) for s, _ in SERVERS for e in _stats(runs, s, w, lambda r: 0)["errors"]]
        if errs:
            L.append("")
            L.append("Invalid runs: " + "; ".join("%s: %s" % (s, e or "?") for s, e in errs[:6]))
        L.append("")

    setup = [r for r in runs if r["workload"] == "setup-roster"]
    if setup:
        L.append("Roster set-up for `presence` (once per server, not a measurement): " + ", ".join(
            "%s %s in %s s" % (r["server"], "ok" if (r["result"] or {}).get("valid") else "FAILED",
                               _fmt(((r["result"] or {}).get("results") or {}).get("elapsed_s", 0)))
            for r in setup))
        L.append("")

    msg = next((r["result"]["params"] for r in runs
                if r["workload"] == "msg" and r.get("result")), None)
    inflight = "%d × %d" % (msg["pairs"], msg["window"]) if msg else "pairs × window"
    L.append("## How to read these")
    L.append("")
    L.append("- **CPU per delivered message** is the server's user+system CPU time over the "
             "measured window divided by the messages delivered in it (`server.cpu_us_per_msg`). "
             "**KiB per idle connection** is (RSS at the end of the hold − RSS before the first "
             "connection) / connections alive (`server.kib_per_conn`); allocators return memory "
             "in large pieces, so it is noisy for small N. Server CPU comes from /proc/PID/stat in "
             "clock ticks (10 ms), so short windows (a small presence run, an idle hold) can read "
             "0; a ratio against 0 is shown as —.")
    L.append("- **Latency under load.** The `msg` percentiles are at full load (closed loop, "
             "%s messages in flight in total), where they mostly show queueing. `msg-half` is "
             "issue 4's latency check: an open-loop load (`--msg-rate`: each pair sends on a "
             "fixed schedule whatever the server answers, so a slow server cannot slow the "
             "offered load) at half of Kurier's delivered msg/s in this run's first valid `msg` "
             "run; it runs against Kurier only (`HALF_SERVERS`), since that rate is above the "
             "others' peak. Latency is from the actual send to the receipt; the generator's own "
             "lateness against the schedule is the *send lag* (a run whose send lag p99 exceeds "
             "5 ms, or whose in-flight bound held a send back, is not valid). `msg-light` (10 "
             "pairs × 1 in flight, closed loop) gives the latency at a light load." % inflight)
    ncpu = mach.get("nproc", "?") if mach else "?"
    pin = _setting(settings, "PIN")
    if pin:
        srv_cpus, gen_cpus = pin.split("/", 1)
        L.append("- **Threads.** Every server was started under `taskset -c %s`: kurierd runs one "
                 "worker per CPU it may use, ejabberd's BEAM was given one scheduler (and one "
                 "dirty CPU scheduler) per such CPU (`+S`, `+SDcpu`), Prosody is single-threaded "
                 "by design. kurier-bench ran under `taskset -c %s` with one thread per CPU "
                 "there (`-t`), so no server competed with the load generator."
                 % (srv_cpus, gen_cpus))
    else:
        L.append("- **Threads.** kurierd runs one worker per CPU (%s), ejabberd's BEAM one "
                 "scheduler per CPU (%s), Prosody is single-threaded by design. kurier-bench "
                 "runs one thread per CPU on the same cores, so every server competes with the "
                 "load generator (`PIN=S/B` separates them)." % (ncpu, ncpu))
    L.append("- **SASL.** Kurier and ejabberd negotiate SCRAM-SHA-256; Prosody 0.12 stores only "
             "SCRAM-SHA-1 credentials, so against it kurier-bench (`--mech auto`) uses "
             "SCRAM-SHA-1. All three store credentials with 4096 PBKDF2 iterations.")
    L.append("- **Equal settings.** All three: TLS required (STARTTLS on the measured port), "
             "loopback only, the same ECDSA P-256 self-signed certificate for `bench.localhost`, "
             "no message archive (MAM), no traffic shaper or rate limit, offline storage on, "
             "the same accounts `bench<i>`/`pw<i>`. Configs: `bench/kurierd.yml`, "
             "`bench/prosody.cfg.lua`, `bench/ejabberd.yml`.")
    L.append("")

    # Hand-written profile and targeted measurements (bench/profile.md), kept with the table
    # so the targets' misses and their causes are read together.
    profile = Path(__file__).resolve().parent.parent / "bench" / "profile.md"
    if pin:
        L.append("The profile and targeted measurements behind these numbers are in "
                 "docs/PERFORMANCE.md (bench/profile.md).")
        L.append("")
    elif profile.exists():
        L.extend(profile.read_text().rstrip("\n").split("\n"))
        L.append("")

    L.append("## Machine")
    L.append("")
    if mach:
        L.append("- CPUs (nproc): %s — %s" % (mach.get("nproc"), mach.get("cpu_model")))
        L.append("- Memory: %s GiB" % mach.get("mem_gib"))
        L.append("- Kernel: %s (%s)" % (mach.get("kernel"), mach.get("kernel_version")))
        L.append("- Distribution: %s" % mach.get("distribution"))
        nf = mach.get("open_files_limit")
        if nf:
            L.append("- Open-file limit per process: soft %s, hard %s" % (nf["soft"], nf["hard"]))
    L.append("")
    L.append("## Versions")
    L.append("")
    for k, v in versions:
        L.append("- %s: %s" % (k, v))
    L.append("")

    L.append("## Exact commands")
    L.append("")
    L.append("Settings of this run (environment of `make bench`):")
    L.append("")
    L.append("```")
    L.append(settings)
    L.append("```")
    L.append("")
    L.append("Servers (started by scripts/bench.sh from the templates in bench/, in a temporary "
             "work directory; the paths are that run's):")
    L.append("")
    L.append("```")
    L.append(starts)
    L.append("```")
    L.append("")
    L.append("kurier-bench, per workload and server (every round ran the same command):")
    L.append("")
    L.append("```")
    seen = set()
    for r in runs:
        key = (r["workload"], r["server"])
        if key in seen:
            continue
        seen.add(key)
        L.append("# %s / %s" % key)
        L.append(r["command"])
    L.append("```")
    L.append("")
    L.append("Every run's full JSON line (with its parameters, error counters and the load "
             "average before and after it) is in `bench/results/%s/runs.jsonl`; the summary "
             "of the latest run is committed as `bench/results/latest-summary.json`." % results.name)
    L.append("")

    out.write_text("\n".join(L))
    summary_path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")


def main(argv) -> int:
    if len(argv) >= 2 and argv[1] == "machine":
        print(json.dumps(machine(), indent=1))
        return 0
    if len(argv) == 5 and argv[1] == "report":
        report(Path(argv[2]), Path(argv[3]), Path(argv[4]))
        return 0
    print("usage: bench_report.py machine | report RESULTS_DIR OUT.md SUMMARY.json",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
