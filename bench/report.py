#!/usr/bin/env python3
"""Summarises a bench/compare.sh results directory as Markdown.

Usage:
  report.py DIR          print DIR's summary (reads meta.tsv, runs.tsv, idle.tsv, raw/)
  report.py --line RAW   one-line digest of one client output (progress lines)

Every ratio and added latency is computed within one round (against that
round's nginx and direct runs), then summarised as the median over rounds
with the range; absolute numbers are medians with their spread,
(max - min) / median. On a shared machine the ratios are what holds.
"""

import csv
import json
import re
import statistics
import sys
from pathlib import Path

TARGETS = ["direct", "tracehop-off", "tracehop-on", "nginx", "haproxy"]
TRACEHOPS = ["tracehop-off", "tracehop-on"]
WRK_RESULT = re.compile(
    r"RESULT requests=(\d+) duration_us=(\d+) p50=(\d+) p90=(\d+) p99=(\d+) "
    r"p999=(\d+) max=(\d+) errors=(\d+)"
)


def parse_client(text):
    """Client output (wrk with wrk-result.lua, or oha JSON) -> dict, or None."""
    match = WRK_RESULT.search(text)
    if match:
        req, dur_us, p50, p90, p99, p999, _max, errors = map(int, match.groups())
        return {"requests": req, "seconds": dur_us / 1e6, "p50": p50, "p90": p90,
                "p99": p99, "p999": p999, "errors": errors}
    start, end = text.find("{"), text.rfind("}")
    if start < 0:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    codes = data.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    # With -z, requests still in flight at the end are aborted "due to
    # deadline": the client's doing, not the server's.
    failed = sum(n for kind, n in data.get("errorDistribution", {}).items()
                 if "deadline" not in kind)
    pct = data["latencyPercentiles"]
    micros = lambda key: round((pct.get(key) or 0.0) * 1e6)
    return {"requests": ok, "seconds": data["summary"]["total"], "p50": micros("p50"),
            "p90": micros("p90"), "p99": micros("p99"), "p999": micros("p99.9"),
            "errors": sum(codes.values()) - ok + failed}


def client_cpu_seconds(path):
    """Children's user+sys: the second line of bash `times` ("0m1.5s 0m0.2s")."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return 0.0
    fields = lines[-1].split() if lines else []
    total = 0.0
    for field in fields:
        m = re.fullmatch(r"(\d+)m([\d.]+)s", field)
        if m:
            total += int(m.group(1)) * 60 + float(m.group(2))
    return total


def median(xs):
    return statistics.median(xs) if xs else None


def spread(xs):
    m = median(xs)
    return 100.0 * (max(xs) - min(xs)) / m if xs and m else None


def fmt(x, pattern="{:.0f}"):
    return "–" if x is None else pattern.format(x)


def ratio_cell(xs):
    """Median (min–max) of per-round ratios."""
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.2f}"
    return f"{median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"


def added_cell(xs):
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:+.0f}"
    return f"{median(xs):+.0f} ({min(xs):+.0f}…{max(xs):+.0f})"


class Results:
    """All runs of one results directory, keyed by (load, target, round)."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.meta = dict(line.rstrip("\n").split("\t", 1)
                         for line in open(self.dir / "meta.tsv") if "\t" in line)
        self.hz = float(self.meta.get("clk_tck", 100))
        self.idle = {}
        for row in csv.DictReader(open(self.dir / "idle.tsv"), delimiter="\t"):
            self.idle[(row["when"], row["target"])] = int(row["rss_kb"])
        self.runs = {}
        self.failed = []
        for row in csv.DictReader(open(self.dir / "runs.tsv"), delimiter="\t"):
            raw = self.dir / "raw" / row["raw"]
            parsed = parse_client(raw.read_text()) if raw.exists() else None
            if parsed is None:
                self.failed.append(row["raw"])
                continue
            self.runs[(row["load"], row["target"], row["round"])] = self._run(row, parsed, raw)
        self.loads = list(dict.fromkeys(key[0] for key in self.runs))

    def _run(self, row, parsed, raw):
        ticks = lambda key: int(row[key]) / self.hz
        own = ticks("upstream_ticks") if row["target"] == "direct" else ticks("target_ticks")
        run = dict(parsed)
        run["rps"] = parsed["requests"] / parsed["seconds"] if parsed["seconds"] else 0.0
        run["cpu_us"] = 1e6 * own / max(parsed["requests"], 1)
        run["rss_kb"] = int(row["rss_load_kb"] or 0)
        ours = ticks("upstream_ticks") + ticks("sink_ticks") + client_cpu_seconds(f"{raw}.cpu")
        if row["target"] != "direct":
            ours += ticks("target_ticks")
        total = int(row["total_ticks"]) / self.hz
        run["other_pct"] = 100.0 * (ticks("busy_ticks") - ours) / total if total else 0.0
        return run

    def rounds(self, load, target):
        return {r: run for (l, t, r), run in self.runs.items() if l == load and t == target}

    def values(self, load, target, key):
        return [run[key] for run in self.rounds(load, target).values()]

    def paired(self, load, target, other, combine):
        """combine(run, other_run) for every round both ran in."""
        mine, theirs = self.rounds(load, target), self.rounds(load, other)
        return [combine(mine[r], theirs[r]) for r in mine if r in theirs]

    def ratio(self, load, target, other, key):
        return self.paired(load, target, other,
                           lambda a, b: a[key] / b[key] if b[key] else float("nan"))

    def added(self, load, target, key):
        return self.paired(load, target, "direct", lambda a, b: a[key] - b[key])


def load_title(load, meta):
    if load == "sat":
        return f"Saturating: wrk, {meta.get('conns', '?')} connections, closed loop"
    rate = int(load.split(":")[1])
    return (f"Fixed rate {rate:,} req/s: oha -q {rate} --latency-correction, "
            f"{meta.get('rate_conns', '?')} connections")


def load_table(res, load):
    out = [f"### {load_title(load, res.meta)}", "",
           "| target | req/s | spread | × nginx | p50 µs | p90 µs | p99 µs | +p50 µs | +p90 µs "
           "| +p99 µs | CPU µs/req | CPU × nginx | RSS load MiB | errors |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for target in TARGETS:
        if not res.rounds(load, target):
            continue
        v = lambda key: res.values(load, target, key)
        proxy = target != "direct"
        out.append("| " + " | ".join([
            target, fmt(median(v("rps"))), fmt(spread(v("rps")), "{:.0f}%"),
            ratio_cell(res.ratio(load, target, "nginx", "rps")),
            fmt(median(v("p50"))), fmt(median(v("p90"))), fmt(median(v("p99"))),
            added_cell(res.added(load, target, "p50")) if proxy else "",
            added_cell(res.added(load, target, "p90")) if proxy else "",
            added_cell(res.added(load, target, "p99")) if proxy else "",
            fmt(median(v("cpu_us")), "{:.1f}"),
            ratio_cell(res.ratio(load, target, "nginx", "cpu_us")) if proxy else "",
            fmt(max(v("rss_kb")) / 1024, "{:.1f}"),
            str(sum(v("errors"))),
        ]) + " |")
    noise = [run["other_pct"] for (l, _, _), run in res.runs.items() if l == load]
    out += ["", f"Other load on the machine during these runs (CPU outside the benchmark, % of all "
                f"cores): median {fmt(median(noise))}%, max {fmt(max(noise) if noise else None)}%.", ""]
    return out


def memory_table(res):
    out = ["### Memory (VmRSS, MiB; nginx: master + worker)", "",
           "| target | idle at start | under load (max) | idle after the runs |", "|---|---|---|---|"]
    for target in TARGETS:
        loaded = [run["rss_kb"] for (_, t, _), run in res.runs.items() if t == target]
        mib = lambda kb: fmt(kb / 1024 if kb is not None else None, "{:.1f}")
        out.append(f"| {target} | {mib(res.idle.get(('start', target)))} | "
                   f"{mib(max(loaded) if loaded else None)} | {mib(res.idle.get(('after', target)))} |")
    return out + [""]


def bar_rows(res):
    """(item, bar, value per tracehop target or None, passes(value)) rows."""
    r5, r20 = "rate:5000", "rate:20000"
    rows = []
    add = lambda item, bar, fn, ok: rows.append((item, bar, {t: fn(t) for t in TRACEHOPS}, ok))
    add("saturated throughput × nginx", "≥ 0.90",
        lambda t: median(res.ratio("sat", t, "nginx", "rps")), lambda x: x >= 0.90)
    add("CPU/request at 5k × nginx", "≤ 1.15",
        lambda t: median(res.ratio(r5, t, "nginx", "cpu_us")), lambda x: x <= 1.15)
    # A negative added latency means the upstream alone (direct) was slower
    # than through a proxy in those rounds: the machine stalled, and the
    # run says nothing about added latency (no verdict).
    below = lambda limit: lambda x: None if x < 0 else x <= limit
    add("added p50 at 5k (µs)", "≤ 200", lambda t: median(res.added(r5, t, "p50")), below(200))
    add("added p99 at 5k (µs)", "≤ 400", lambda t: median(res.added(r5, t, "p99")), below(400))
    nginx_p99 = median(res.added(r5, "nginx", "p99"))
    add(f"added p99 at 5k vs nginx's ({fmt(nginx_p99)} µs)", "≤ nginx",
        lambda t: median(res.added(r5, t, "p99")),
        lambda x: None if nginx_p99 is None or nginx_p99 < 0 or x < 0 else x <= nginx_p99)
    add("added p99 at 20k (µs)", "≤ 2000", lambda t: median(res.added(r20, t, "p99")),
        below(2000))
    on_off = res.paired(r5, "tracehop-on", "tracehop-off", lambda a, b: a["cpu_us"] / b["cpu_us"])
    rows.append(("CPU/request at 5k, tracing on ÷ off", "≤ 1.15",
                 {"tracehop-off": None, "tracehop-on": median(on_off)}, lambda x: x <= 1.15))
    idle = lambda t: res.idle.get(("start", t), 0) / 1024 or None
    add("RSS idle (MiB)", "≤ 8", idle, lambda x: x <= 8)
    add(f"RSS under {res.meta.get('conns', '?')} connections (MiB)", "≤ 16",
        lambda t: max(res.values("sat", t, "rss_kb"), default=0) / 1024 or None, lambda x: x <= 16)
    errors = lambda t: sum(run["errors"] for (_, tt, _), run in res.runs.items() if tt == t)
    add("errors (all runs)", "0", errors, lambda x: x == 0)
    return rows


def bar_table(res):
    out = ["### Against the bar", "", "| item | bar | tracehop-off | tracehop-on |", "|---|---|---|---|"]
    for item, bar, values, ok in bar_rows(res):
        cells = []
        for target in TRACEHOPS:
            x = values[target]
            if x is None:
                cells.append("–")
                continue
            verdict = {True: "pass", False: "FAIL", None: "no verdict (baseline stalled)"}[ok(x)]
            cells.append(f"{x:.2f} {verdict}" if isinstance(x, float) else f"{x} {verdict}")
        out.append(f"| {item} | {bar} | {cells[0]} | {cells[1]} |")
    return out + [""]


def tracehop_counters(res):
    """Span export counters per tracehop target, from its /metrics at the end."""
    path = res.dir / "tracehop-metrics.txt"
    if not path.exists():
        return []
    counters = {}
    for line in path.read_text().splitlines():
        target, _, metric = line.partition("\t")
        m = re.match(r"tracehop_spans_(exported|dropped)_total\{exporter=\"\w+\"(?:,reason=\"(\w+)\")?\} (\S+)", metric)
        if m:
            label = m.group(1) + (f" ({m.group(2)})" if m.group(2) else "")
            counters.setdefault(target, []).append(f"{label} {float(m.group(3)):.0f}")
    if not counters:
        return []
    text = "; ".join(f"{t}: {', '.join(c)}" for t, c in counters.items())
    return [f"Spans after all runs, warm-up included: {text}.", ""]


def report(directory):
    res = Results(directory)
    m = res.meta
    out = [f"## tracehop benchmark, {m.get('date', '?')}", "",
           f"Machine: {m.get('cpus', '?')} CPUs ({m.get('cpu_model', '?')}), Linux {m.get('kernel', '?')}; "
           f"load generator on one CPU and upstream + proxy on the other ({m.get('placement', '?')}); "
           f"nice {m.get('nice', 'none')}; load average {m.get('loadavg_start', '?')} at start, "
           f"{m.get('loadavg_end', '?')} at the end.",
           f"Method: {m.get('rounds', '?')} interleaved rounds of {m.get('duration_s', '?')} s runs per "
           f"target and load; one worker per proxy (TOKIO_WORKER_THREADS=1 for tracehop). "
           f"Absolute numbers are medians over rounds, spread = (max − min) / median; "
           f"× nginx and +latency (added over direct) are taken within each round, then "
           f"median (min–max) over rounds. CPU µs/req = utime+stime of the target's own "
           f"processes / requests answered (direct: the upstream's). "
           f"Access logs: {m.get('access_log', 'off')}.",
           f"Versions: {m.get('tracehop', '?')}; nginx {m.get('nginx', '?')}; {m.get('haproxy', '?')}; "
           f"{m.get('wrk', '?')}; {m.get('oha', 'no oha')}.", ""]
    for load in res.loads:
        out += load_table(res, load)
    out += memory_table(res)
    out += bar_table(res)
    out += tracehop_counters(res)
    if res.failed:
        out += [f"Runs without a parsable result (left out): {', '.join(res.failed)}", ""]
    return "\n".join(out)


def main(argv):
    if len(argv) == 3 and argv[1] == "--line":
        parsed = parse_client(Path(argv[2]).read_text())
        if parsed is None:
            print("no result (see " + argv[2] + ")")
        else:
            rps = parsed["requests"] / parsed["seconds"] if parsed["seconds"] else 0
            print(f"rps={rps:.0f} p50={parsed['p50']}us p99={parsed['p99']}us errors={parsed['errors']}")
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(report(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
