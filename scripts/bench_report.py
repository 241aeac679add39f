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

Any subset of the servers may have run: the tables have a column for each server that ran or
could not be started. When an older kurierd ran as `kurier-base` beside `kurier`, a section
compares the two builds metric by metric and states the verdicts asked of a change to the core
(msg/s and CPU per message within 5 %, logins/s and KiB per idle connection no worse), each
with the rule behind it; the summary gets the same under "comparison".
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
BASE = "kurier-base"   # an older kurierd (scripts/bench.sh: BASE_REF or BASE_KURIERD)


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

# Shown only when Kurier is compared with an older Kurier (kurier-base): more of what
# kurier-bench reports, where a change to the core could move it. workload -> [(after which
# metric of METRICS, metric)].
COMPARE_EXTRA = {
    "msg": [("latency p50", ("latency p90", _pct("latency_us", "p90"), "ms", "lower"))],
    "msg-light": [("latency p50", ("latency p90", _pct("latency_us", "p90"), "ms", "lower"))],
    "login": [("server CPU per login",
               ("server RSS after the run", _srv("rss_kib", 1 / 1024), "MiB", "lower"))],
    "idle": [("server RSS with all connected",
              ("server RSS before the first connection", _srv("rss_kib_before", 1 / 1024), "MiB",
               "lower"))],
}

# What a change to the core must keep against the build before it (issue: "msg/s and server
# CPU per message within 5 % of today's main in the same run, logins/s and KiB per idle
# connection no worse"): (label, workload, metric as in METRICS, rule).
REQUIREMENTS = [
    ("msg/s within 5 %", "msg", "delivered msg/s", "within5"),
    ("CPU per message within 5 %", "msg", "server CPU per delivered message", "within5"),
    ("logins/s no worse", "login", "logins/s", "noworse"),
    ("KiB per idle connection no worse", "idle", "memory per idle connection", "noworse"),
]
WITHIN = 0.05
RULES = {
    "within5": "Kurier's median at most 5 % worse than kurier-base's (better passes)",
    "noworse": "Kurier's median better than kurier-base's, or worse by at most the larger "
               "spread (max - min) of the two builds' valid rounds (0 with one round)",
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


def _spread(st) -> float:
    return st["max"] - st["min"] if "median" in st else 0.0


def _verdict(label, k, b, better, rule, unit):
    """One requirement of Kurier (k) against kurier-base (b): (Markdown line, summary dict)."""
    out = {"requirement": label, "rule": RULES[rule], "ok": None, "ratio": None}
    if "median" not in k or "median" not in b or b["median"] == 0:
        why = "not measured" if not (k["runs"] and b["runs"]) else "no valid run on both"
        return "- %s: **—** (%s)" % (label, why), out
    ratio = k["median"] / b["median"]
    # How much worse Kurier is, in the metric's own unit (negative: better).
    worse = (b["median"] - k["median"]) if better == "higher" else (k["median"] - b["median"])
    out.update({"ratio": ratio, "kurier": k["median"], BASE: b["median"], "worse_by": worse})
    detail = "Kurier/%s %.3f: %s against %s %s" % (
        BASE, ratio, _fmt(k["median"]), _fmt(b["median"]), unit)
    if rule == "within5":
        ok = worse <= WITHIN * b["median"] * (1 + 1e-9)
        if worse < -WITHIN * b["median"]:
            detail += ", better by %.1f %%" % (100 * -worse / b["median"])
        noise = max(_spread(k) / k["median"], _spread(b) / b["median"]) if k["median"] else 0
        if noise > WITHIN:
            detail += "; the rounds themselves spread by up to %.0f %%, more than the 5 %% " \
                      "judged, so rerun with more ROUNDS or PIN before trusting it" % (100 * noise)
        elif len(k["values"]) < 2 or len(b["values"]) < 2:
            detail += "; one round each, so nothing shows this run's noise"
    else:
        tol = max(_spread(k), _spread(b))
        out["tolerance"] = tol
        ok = worse <= tol * (1 + 1e-9)
        if worse <= 0:
            detail += ", not worse"
        elif len(k["values"]) < 2 or len(b["values"]) < 2:
            detail += ", worse by %s %s; one round each, so no spread to allow for" % (
                _fmt(worse), unit)
        else:
            detail += ", worse by %s %s, the larger spread of the rounds being %s %s" % (
                _fmt(worse), unit, _fmt(tol), unit)
    out["ok"] = bool(ok)
    return "- %s: **%s** (%s)" % (label, "yes" if ok else "no", detail), out


def _binary(starts: str, server: str) -> str:
    """The kurierd that bench.sh started for server, from server-commands.txt."""
    m = re.search(r"^%s: cd \S+ && (?:taskset -c \S+ )?(\S+) -c " % re.escape(server), starts, re.M)
    return m.group(1) if m else "?"


def _comparison(runs, workloads, versions, rounds, starts):
    """Kurier against kurier-base, an older kurierd run in the same rounds: the requirements'
    verdicts, then every metric of every workload both ran. -> (Markdown lines, summary)."""
    git = versions.get("kurier-base-git") or ""
    sha = git.split(" ", 1)[0]
    given = (versions.get("kurier-base-binary") or "").split(" ", 1)[0]
    what = "revision %s" % sha[:12] if sha else given or "unknown build"
    summary = {"base": BASE, "revision": sha or None, "binary": _binary(starts, BASE),
               "version": versions.get(BASE), "kurier_git": versions.get("kurier-git"),
               "kurier_binary": _binary(starts, "kurier"), "table": {}, "verdicts": []}
    if sha:
        origin = "revision %s" % sha
        if " " in git:   # "(BASE_REF=..., built by bench.sh)"
            origin += ", " + git.split(" ", 1)[1].strip("()")
    else:
        origin = "given as BASE_KURIERD"
    L = ["## Kurier against an older Kurier (%s, %s)" % (BASE, what), ""]
    L.append("Two kurierd builds run the same way in the same rounds: the same "
             "`bench/kurierd.yml`, accounts, load generator and CPUs, each with its own data "
             "directory and ports; the two trade places in even rounds, so that neither always "
             "runs right after the other. Kurier: `%s` (%s, this tree at %s). %s: `%s` (%s, %s). "
             "Ratios are Kurier's median divided by %s's." % (
                 summary["kurier_binary"], versions.get("kurierd", "?"),
                 versions.get("kurier-git", "?"), BASE, summary["binary"],
                 versions.get(BASE, "?"), origin, BASE))
    L.append("")
    L.append("What a change to the core must keep against the build before it (msg/s and server "
             "CPU per message within 5 %, logins/s and KiB per idle connection no worse):")
    L.append("")
    for label, w, metric, rule in REQUIREMENTS:
        extract, unit, better = next((e, u, b) for n, e, u, b in METRICS[w][1] if n == metric)
        k, b = (_stats(runs, s, w, extract) for s in ("kurier", BASE))
        line, verdict = _verdict(label, k, b, better, rule, unit)
        verdict.update(workload=w, metric=metric, unit=unit)
        L.append(line)
        summary["verdicts"].append(verdict)
    L.append("")
    L.append("Rules: *within 5 %%* means Kurier's median of the `msg` runs is at most 5 %% worse "
             "than %s's (msg/s ratio ≥ 0.95, CPU per message ratio ≤ 1.05; faster passes). "
             "*No worse* means Kurier's median is better, or worse by no more than the larger "
             "spread (max − min) of the two builds' valid rounds, which is what this run can "
             "tell apart from noise; with one round there is no spread, so any difference counts. "
             "Medians over %d round(s)." % (BASE, rounds))
    L.append("")
    for w in workloads:
        pairs = [(s, w) for s in ("kurier", BASE)]
        if not all(any(r["server"] == s and r["workload"] == x for r in runs) for s, x in pairs):
            continue
        title, metrics = METRICS[w]
        L.append("### %s" % title)
        L.append("")
        L.append("| metric | unit | better | Kurier | %s | Kurier/%s |" % (BASE, BASE))
        L.append("|---|---|---|---|---|---|")
        summary["table"][w] = {}
        metrics = list(metrics)
        for after, extra in COMPARE_EXTRA.get(w, []):
            at = next((i + 1 for i, m in enumerate(metrics) if m[0] == after), len(metrics))
            metrics.insert(at, extra)
        for name, extract, unit, better in metrics:
            k, b = (_stats(runs, s, w, extract) for s in ("kurier", BASE))
            L.append("| %s | %s | %s | %s | %s | %s |" % (
                name, unit, better, _cell(k), _cell(b), _ratio(k, b)))
            summary["table"][w][name] = {
                s: {x: v for x, v in st.items() if x in ("median", "min", "max", "valid", "runs")}
                for s, st in (("kurier", k), (BASE, b))}
            summary["table"][w][name].update(
                unit=unit, better=better,
                ratio=k["median"] / b["median"] if _ratio(k, b) != "—" else None)
        errs = [(s, e) for s in ("kurier", BASE) for e in _stats(runs, s, w, lambda r: 0)["errors"]]
        if errs:
            L.append("")
            L.append("Invalid runs: " + "; ".join("%s: %s" % (s, e or "?") for s, e in errs[:6]))
        L.append("")
    return L, summary


def _names(names) -> str:
    """'A', 'A and B', 'A, B and C'."""
    names = list(names)
    if len(names) < 2:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _servers_seen(runs, down) -> list:
    """The servers of this run in the order they ran (round 1's), then those that could not
    be started."""
    seen = []
    for r in sorted(runs, key=lambda r: r["round"] == 0):   # stable: setup-roster last
        if r["server"] not in seen:
            seen.append(r["server"])
    return seen + [s for s in down if s not in seen]


def _display(server: str) -> str:
    return dict(SERVERS).get(server, server)


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
    present = _servers_seen(runs, down)
    ran = [s for s in present if s not in down]
    compare = any(r["server"] == "kurier" for r in runs) and any(r["server"] == BASE for r in runs)
    # The main tables: Kurier, ejabberd and Prosody, each if it ran or could not be started;
    # kurier-base too unless it has its own section against Kurier.
    cols = [(s, n) for s, n in SERVERS[:1] + [(BASE, BASE)] + SERVERS[1:]
            if s in present and not (s == BASE and compare)] or list(SERVERS)
    has_kurier = any(s == "kurier" for s, _ in cols)
    others = [(s, n) for s, n in cols if s != "kurier"] if has_kurier else []
    # Only the two Kurier builds: their section says it all, without a one-column table.
    main_tables = not (compare and [s for s, _ in cols] == ["kurier"])

    L = []
    L.append("<!-- SPDX-License-Identifier: AGPL-3.0-or-later -->")
    title = [("an older Kurier (%s)" % BASE if s == BASE else _display(s))
             for s in [x for x, _ in SERVERS[:1]] + [BASE] + [x for x, _ in SERVERS[1:]]
             if s in present] or [n for _, n in SERVERS]
    L.append("# Performance: %s" % (title[0] if len(title) == 1 else
                                    "%s side by side" % _names(title)))
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
    order = [_display(s) for s in ran] or [n for _, n in cols]
    L.append("Cells: **median** (min–max) over %d %s. Only valid runs (kurier-bench "
             "`\"valid\": true`: no loss, no failed logins, all connections up) count; "
             "`[v/n valid]` shows when some were not. %s" % (
                 rounds, "round(s) of %s alone" % order[0] if len(order) == 1 else
                 "interleaved round(s) (%s, %s, ... for each workload%s)" % (
                     ", ".join(order), order[0],
                     "; Kurier and %s trade places in even rounds" % BASE if compare else ""),
                 "Ratios are Kurier's median divided by the other server's; whether more is "
                 "better is in the *better* column." if others or compare else
                 "Whether more is better is in the *better* column."))
    L.append("")
    if down:
        L.append("**Not benchmarked:**")
        for s, why in down.items():
            L.append("- %s: %s" % (s, why))
        L.append("")

    summary = {"results_dir": results.name, "quick": quick, "rounds": rounds,
               "machine": mach, "versions": dict(versions), "unavailable": down, "table": {}}
    for w in workloads if main_tables else []:
        title, metrics = METRICS[w]
        L.append("## %s" % title)
        L.append("")
        L.append("| metric | unit | better | %s |" % " | ".join(
            [n for _, n in cols] + ["Kurier/%s" % n for _, n in others]))
        L.append("|---|---|---|%s" % ("---|" * (len(cols) + len(others))))
        summary["table"][w] = {}
        for name, extract, unit, better in metrics:
            st = {s: _stats(runs, s, w, extract) for s, _ in cols}
            cells = [_cell(st[s]) for s, _ in cols] + \
                [_ratio(st["kurier"], st[s]) for s, _ in others]
            L.append("| %s | %s | %s | %s |" % (name, unit, better, " | ".join(cells)))
            summary["table"][w][name] = {
                s: {k: v for k, v in st[s].items() if k in ("median", "min", "max", "valid", "runs")}
                for s, _ in cols}
            summary["table"][w][name]["unit"] = unit
        errs = [(s, e) for s, _ in cols for e in _stats(runs, s, w, lambda r: 0)["errors"]]
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

    if compare:
        lines, summary["comparison"] = _comparison(runs, workloads, dict(versions), rounds,
                                                   starts)
        L.extend(lines)

    msg = next((r["result"]["params"] for r in runs
                if r["workload"] == "msg" and r.get("result")), None)
    half = [s for s in ran if any(r["server"] == s and r["workload"] == "msg-half" for r in runs)]
    if not half:   # msg-half did not run: what HALF_SERVERS asked for
        m = re.search(r'(?:^|\s)HALF_SERVERS="([^"]*)"', settings)
        half = [s for s in ran if s in (m.group(1).split() if m else ["kurier"])]
    if half in ([], ["kurier"]):
        half_text = "Kurier only (`HALF_SERVERS`), since that rate is above the others' peak"
    else:
        half_text = "%s (`HALF_SERVERS`), each at that same offered load" % _names(
            _display(s) for s in half)
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
             "run; it runs against %s. Latency is from the actual send to the receipt; the "
             "generator's own "
             "lateness against the schedule is the *send lag* (a run whose send lag p99 exceeds "
             "5 ms, or whose in-flight bound held a send back, is not valid). `msg-light` (10 "
             "pairs × 1 in flight, closed loop) gives the latency at a light load." % (
                 inflight, half_text))
    ncpu = mach.get("nproc", "?") if mach else "?"
    pin = _setting(settings, "PIN")
    kurierds = [s for s in ("kurier", BASE) if s in present]
    if pin:
        srv_cpus, gen_cpus = pin.split("/", 1)
        threads = {"kurierd": "kurierd runs one worker per CPU it may use",
                   "ejabberd": "ejabberd's BEAM was given one scheduler (and one dirty CPU "
                               "scheduler) per such CPU (`+S`, `+SDcpu`)",
                   "prosody": "Prosody is single-threaded by design"}
    else:
        threads = {"kurierd": "kurierd runs one worker per CPU (%s)" % ncpu,
                   "ejabberd": "ejabberd's BEAM one scheduler per CPU (%s)" % ncpu,
                   "prosody": "Prosody is single-threaded by design"}
    threads = ", ".join(v for k, v in threads.items()
                        if k in present or (k == "kurierd" and kurierds))
    if pin:
        L.append("- **Threads.** Every server was started under `taskset -c %s`: %s. "
                 "kurier-bench ran under `taskset -c %s` with one thread per CPU "
                 "there (`-t`), so no server competed with the load generator."
                 % (srv_cpus, threads, gen_cpus))
    else:
        L.append("- **Threads.** %s. kurier-bench "
                 "runs one thread per CPU on the same cores, so every server competes with the "
                 "load generator (`PIN=S/B` separates them)." % threads)
    if "prosody" in present:
        L.append("- **SASL.** %s negotiate SCRAM-SHA-256; Prosody 0.12 stores "
                 "only SCRAM-SHA-1 credentials, so against it kurier-bench (`--mech auto`) uses "
                 "SCRAM-SHA-1. %s store credentials with 4096 PBKDF2 iterations." % (
                     ("Kurier (both builds) and ejabberd", "All of them") if BASE in present
                     else ("Kurier and ejabberd", "All three")))
    else:
        names = (["Kurier" if len(kurierds) < 2 else "both Kurier builds"] if kurierds else []) \
            + (["ejabberd"] if "ejabberd" in present else [])
        L.append("- **SASL.** %s negotiate%s SCRAM-SHA-256 and store%s credentials with 4096 "
                 "PBKDF2 iterations." % (_names(names)[:1].upper() + _names(names)[1:],
                                         *(("s", "s") if names == ["Kurier"] else ("", ""))))
    configs = [c for c, there in (("bench/kurierd.yml", kurierds),
                                  ("bench/prosody.cfg.lua", "prosody" in present),
                                  ("bench/ejabberd.yml", "ejabberd" in present)) if there]
    L.append("- **%s** %s: TLS required (STARTTLS on the measured port), "
             "loopback only, the same ECDSA P-256 self-signed certificate for `bench.localhost`, "
             "no message archive (MAM), no traffic shaper or rate limit, offline storage on, "
             "the same accounts `bench<i>`/`pw<i>`. Config%s: %s." % (
                 "Settings." if len(present) == 1 else "Equal settings.",
                 {1: "The server", 2: "Both", 3: "All three", 4: "All four"}.get(
                     len(present), "All of them"),
                 "s" if len(configs) > 1 else "", ", ".join("`%s`" % c for c in configs)))
    L.append("")

    # Hand-written profile and targeted measurements (bench/profile.md), kept with the table
    # so the targets' misses and their causes are read together.
    profile = Path(__file__).resolve().parent.parent / "bench" / "profile.md"
    if pin or (compare and not ("ejabberd" in present or "prosody" in present)):
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
