#!/usr/bin/env python3
"""Collector capacity: ingest rate with tail sampling, memory per span, RSS.

Starts the release `tracehop collector` on 127.0.0.1 with one worker thread
pinned to one CPU (`TOKIO_WORKER_THREADS=1`, `taskset`), posts realistic
sidecar batches to it (Zipkin JSON, a few hundred spans per POST, 5 % of
traces with an error, three spans per trace as a gateway → service hop
records them) from a load generator pinned to the other CPU, and reads
`/metrics` and `/proc/PID` at the end. Modes, interleaved in rounds so a busy
machine hits each alike:

- store:     no tail sampling (the baseline of the ratio);
- tail:      tail sampling on (errors, slow, 5 % baseline, a span budget),
             decision_wait long enough that every trace is still waiting
             when the load ends, max_traces 100,000 (the buffer full);
- footprint: no tail sampling, --max-memory 2GiB: every span stays stored,
             so RSS and the accounted bytes per span can be read.

Reported per mode (median over rounds): spans/s over wall time, spans per
CPU-second of the collector (its utime + stime: what one core sustains,
whatever else the machine does), the tail/store ratio of both, RSS after
the load, bytes counted against --max-memory, traces held, spans stored.

Usage: bench/collector.py [--rounds 3] [--spans 600000] [--batch 300]
                          [--connections 2] [--binary target/release/tracehop]
Only Python's standard library; the binary is built when missing
(`cargo build --release`).
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TAIL_POLICY = """\
decision_wait: 120s
max_traces: 100000
policies:
  - { name: errors,   type: status_code }
  - { name: slow,     type: latency, threshold: 500ms }
  - { name: baseline, type: probabilistic, ratio: 0.05 }
  - { name: budget,   type: rate_limiting, spans_per_second: 2000 }
"""

T0 = 1_700_000_000_000_000


def hexid(bits):
    return format(random.getrandbits(bits) | 1, "0%dx" % (bits // 4))


def sidecar_span(trace, span_id, parent, kind, service, remote, route, start, duration, error):
    """One span as a tracehop sidecar records it (DESIGN §4 tags)."""
    tags = {
        "http.request.method": "GET",
        "url.path": route.replace("{id}", str(random.randint(1, 9999))),
        "url.scheme": "http",
        "server.address": service,
        "http.route": route,
        "http.response.status_code": "500" if error else "200",
        "network.protocol.version": "1.1",
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) shop-frontend/2.3",
        "client.address": "10.1.%d.%d" % (random.randint(0, 255), random.randint(1, 254)),
        "http.response.body.size": str(random.randint(80, 4000)),
        "k8s.pod.name": "%s-7d9c5b6f4-%s" % (service, hexid(16)[:5]),
        "k8s.namespace.name": "shop",
    }
    if error:
        tags["error"] = "500"
    span = {
        "traceId": trace,
        "id": span_id,
        "kind": kind,
        "name": "get " + route,
        "timestamp": start,
        "duration": duration,
        "localEndpoint": {"serviceName": service, "ipv4": "10.1.2.3", "port": 8080},
        "tags": tags,
    }
    if parent:
        span["parentId"] = parent
    if remote:
        span["remoteEndpoint"] = {"serviceName": remote, "port": 8080}
    else:
        span["remoteEndpoint"] = {"ipv4": "10.1.2.9", "port": random.randint(1024, 65535)}
    return span


def trace_spans(n):
    """Three spans: gateway SERVER, its CLIENT call, the service's SERVER."""
    trace = hexid(128)
    error = random.random() < 0.05
    root, call, server = hexid(64), hexid(64), hexid(64)  # W3C: a new id per hop
    start = T0 + n * 200
    duration = random.randint(800, 40_000)
    route = random.choice(["/api/orders/{id}", "/api/users/{id}", "/api/orders"])
    service = "order-service" if "orders" in route else "user-service"
    return [
        sidecar_span(trace, root, None, "SERVER", "api-gateway", None, route, start, duration, error),
        sidecar_span(trace, call, root, "CLIENT", "api-gateway", service, route, start + 50, duration - 100, error),
        sidecar_span(trace, server, call, "SERVER", service, None, route, start + 80, duration - 200, error),
    ]


def batches(total, batch):
    """Bodies of `batch` spans each, `total` spans in all; spans of one
    trace may fall in two batches, as they do from several sidecars."""
    spans, bodies, n = [], [], 0
    while n * 3 < total:
        spans.extend(trace_spans(n))
        n += 1
        while len(spans) >= batch:
            bodies.append(json.dumps(spans[:batch]).encode())
            spans = spans[batch:]
    if spans:
        bodies.append(json.dumps(spans).encode())
    return bodies


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def scrape(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def start(binary, args, cpu):
    port = free_port()
    env = dict(os.environ, TOKIO_WORKER_THREADS="1", RUST_LOG="warn")
    command = ["taskset", "-c", str(cpu), binary, "collector", "--listen", "127.0.0.1:%d" % port] + args
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("the collector did not start: %s" % " ".join(command))


def post_all(port, bodies, connections):
    """Posts every body over `connections` keep-alive connections; each
    POST waits for its 202, so the rate is what the collector sustains."""
    failures = []

    def worker(share):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in share:
            conn.request("POST", "/api/v2/spans", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 202:
                failures.append(response.status)
        conn.close()

    threads = [threading.Thread(target=worker, args=(bodies[i::connections],)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit("%d uploads failed, e.g. %s" % (len(failures), failures[0]))


def run(mode, binary, bodies, spans, options, policy_file):
    args = {
        "store": [],
        "tail": ["--tail-sampling", policy_file],
        "footprint": ["--max-memory", "2GiB", "--max-spans", str(spans * 2)],
    }[mode]
    process, port = start(binary, args, options.collector_cpu)
    try:
        time.sleep(0.3)
        idle_rss = rss_bytes(process.pid)
        cpu_before = cpu_seconds(process.pid)
        began = time.monotonic()
        post_all(port, bodies, options.connections)
        wall = time.monotonic() - began
        cpu = cpu_seconds(process.pid) - cpu_before
        metrics = scrape(port)
        return {
            "spans_per_s": spans / wall,
            "spans_per_cpu_s": spans / cpu if cpu > 0 else float("nan"),
            "rss": rss_bytes(process.pid),
            "idle_rss": idle_rss,
            "memory": metrics.get("tracehop_collector_memory_bytes", 0),
            "held": metrics.get("tracehop_collector_tail_traces_held", 0),
            "early": metrics.get("tracehop_collector_tail_early_decisions_total", 0),
            "stored": metrics.get("tracehop_collector_stored_spans", 0),
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def mib(value):
    return "%.0f MiB" % (value / (1 << 20))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spans", type=int, default=600_000)
    parser.add_argument("--batch", type=int, default=300)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--collector-cpu", type=int, default=0)
    parser.add_argument("--binary", default="target/release/tracehop")
    options = parser.parse_args()
    if not os.path.exists(options.binary):
        subprocess.run(["cargo", "build", "--release", "--bin", "tracehop"], check=True)
    # The load generator on the other CPU.
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        others = set(range(os.cpu_count())) - {options.collector_cpu}
        os.sched_setaffinity(0, others)
    random.seed(20)
    print("generating %d spans..." % options.spans, flush=True)
    bodies = batches(options.spans, options.batch)
    body_bytes = sum(len(b) for b in bodies)
    print("%d batches, %.0f bytes of JSON per span" % (len(bodies), body_bytes / options.spans))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(TAIL_POLICY)
        policy_file = f.name
    modes = ["store", "tail", "footprint"]
    results = {mode: [] for mode in modes}
    ratios = []
    for round_ in range(options.rounds):
        order = modes[round_ % len(modes):] + modes[: round_ % len(modes)]
        for mode in order:
            result = run(mode, options.binary, bodies, options.spans, options, policy_file)
            results[mode].append(result)
            print("round %d %-9s %9.0f spans/s %9.0f spans/cpu-s  rss %s  counted %s  held %d  stored %d"
                  % (round_ + 1, mode, result["spans_per_s"], result["spans_per_cpu_s"],
                     mib(result["rss"]), mib(result["memory"]), result["held"], result["stored"]), flush=True)
        tail, store = results["tail"][-1], results["store"][-1]
        ratios.append((tail["spans_per_s"] / store["spans_per_s"],
                       tail["spans_per_cpu_s"] / store["spans_per_cpu_s"]))
    os.unlink(policy_file)
    median = lambda mode, key: statistics.median(r[key] for r in results[mode])
    print()
    print("| mode | spans/s (wall) | spans per CPU-second | RSS after %d spans | counted (--max-memory) | traces held | spans stored |"
          % options.spans)
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        print("| %s | %.0f | %.0f | %s | %s | %d | %d |" % (
            mode, median(mode, "spans_per_s"), median(mode, "spans_per_cpu_s"), mib(median(mode, "rss")),
            mib(median(mode, "memory")), median(mode, "held"), median(mode, "stored")))
    print()
    print("tail / store, same round (median): %.2f wall, %.2f per CPU-second"
          % (statistics.median(r[0] for r in ratios), statistics.median(r[1] for r in ratios)))
    stored = median("footprint", "stored")
    if stored:
        grown = median("footprint", "rss") - median("footprint", "idle_rss")
        print("footprint: %.0f bytes of RSS and %.0f bytes counted per stored span"
              % (grown / stored, median("footprint", "memory") / stored))


if __name__ == "__main__":
    main()
