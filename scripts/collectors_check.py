#!/usr/bin/env python3
"""Several collectors behind one sidecar, end to end with the release binary.

  collectors_check.py TRACEHOP WORKDIR

Starts three `tracehop collector` processes, an app that answers 500 on
/fail, and one sidecar whose `export.zipkin` lists all three collectors.
Sends mixed traffic (two requests per trace, about 5 % of traces with a
failed second request) and reads every collector back through the Zipkin
API. Checks:
  - no trace id is on two collectors, and each trace is on the collector
    rendezvous hashing names (computed here independently, from the
    sidecar's endpoint names: the collector URLs as configured);
  - each error trace is whole (both spans) on exactly one collector;
  - without tail sampling, every trace arrives whole;
  - stopping one collector moves only its share: the traces sent after it
    stopped that hash to the others land there, none of its own share does,
    and the sidecar counts connection errors for it alone.
When `tracehop collector --help` lists `--tail-sampling`, the collectors run
with the `errors` and `probabilistic 0.1` policies, and the checks add: every
error trace kept, and the kept share of the other traces within 0.1 +- 0.03.
Otherwise that part prints `skip: ...`.

Prints `ok: ...` and `skip: ...` lines; exits 1 with `FAIL: ...` on failure.
Everything listens on 127.0.0.1; every process started here is stopped.
"""
import http.client
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

MASK = (1 << 64) - 1
PHASE_ONE = 2000  # traces; with ~5 % errors, ~100 error traces
PHASE_TWO = 600
ERROR_SHARE = 0.05
DECISION_WAIT = 2  # seconds, for tail sampling


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


# --- rendezvous hashing, as the sidecar documents it (src/export/rendezvous.rs)
def mix(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def seed(name):
    h = 0xCBF29CE484222325
    for byte in name.encode():
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return mix(h)


def owner(trace_hex, names):
    trace = int(trace_hex, 16)
    high, low = trace >> 64, trace & MASK
    seeds = [seed(n) for n in names]
    return max(range(len(names)), key=lambda i: (mix(mix(seeds[i] ^ high) ^ low), seeds[i]))


# --- processes and ports
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    fail(f"{what} is not listening on {port}")


class App(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's
        # algorithm and delayed ACKs cost 40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        status = 500 if self.path.startswith("/fail") else 200
        body = b"failed" if status == 500 else b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def send(port, traces, errors):
    """Two requests per trace; the second fails for traces in `errors`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for trace in traces:
        for n, path in enumerate(["/ok", "/fail" if trace in errors else "/ok"]):
            parent = f"{random.getrandbits(63) + 1:016x}"
            conn.request("GET", path, headers={"traceparent": f"00-{trace}-{parent}-01"})
            response = conn.getresponse()
            response.read()
            want = 500 if path == "/fail" else 200
            if response.status != want:
                fail(f"request {n} of trace {trace}: status {response.status}, want {want}")
    conn.close()


def stored(port):
    """trace id -> span count, as the collector on `port` returns them."""
    url = f"http://127.0.0.1:{port}/api/v2/traces?limit=1000000&lookback=3600000"
    with urllib.request.urlopen(url, timeout=10) as response:
        traces = json.load(response)
    out = {}
    for trace in traces:
        for span in trace:
            out[span["traceId"]] = out.get(span["traceId"], 0) + 1
    return out


def settle(ports, done, seconds):
    """Polls the collectors until `done(views)` or, with no condition, until
    the counts stop changing for 3 s; returns the last views."""
    deadline = time.time() + seconds
    last, stable_since = None, time.time()
    while time.time() < deadline:
        views = [stored(p) for p in ports]
        if done is not None and done(views):
            return views
        if done is None:
            if views != last:
                last, stable_since = views, time.time()
            elif time.time() - stable_since >= 3:
                return views
        time.sleep(0.5)
    if done is None:
        return last
    fail("collectors did not receive the expected spans in time: "
         + ", ".join(str(sum(v.values())) for v in views))


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    random.seed(20)
    procs = []
    try:
        run(binary, work, procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(binary, work, procs):
    help_text = subprocess.run([binary, "collector", "--help"], capture_output=True, text=True).stdout
    tail = "--tail-sampling" in help_text
    policy = os.path.join(work, "tail.yaml")
    with open(policy, "w") as f:
        f.write(f"decision_wait: {DECISION_WAIT}s\npolicies:\n"
                "  - {name: errors, type: status_code}\n"
                "  - {name: baseline, type: probabilistic, ratio: 0.1}\n")

    app_port = free_port()
    app = http.server.ThreadingHTTPServer(("127.0.0.1", app_port), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()

    ports = [free_port() for _ in range(3)]
    for i, port in enumerate(ports):
        args = [binary, "collector", "--listen", f"127.0.0.1:{port}"]
        if tail:
            args += ["--tail-sampling", policy]
        log = open(os.path.join(work, f"collector-{i}.log"), "w")
        procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
    names = [f"http://127.0.0.1:{port}/api/v2/spans" for port in ports]
    proxy, admin = free_port(), free_port()
    config = os.path.join(work, "sidecar.yaml")
    with open(config, "w") as f:
        f.write(f"service:\n  name: lb-check\n"
                f"inbound:\n  listen: 127.0.0.1:{proxy}\n  upstream: http://127.0.0.1:{app_port}\n"
                f"admin:\n  listen: 127.0.0.1:{admin}\n"
                f"export:\n  zipkin: [{', '.join(names)}]\n  batch_interval: 100ms\n"
                f"log:\n  access_log: false\n")
    sidecar_log = open(os.path.join(work, "sidecar.log"), "w")
    procs.append(subprocess.Popen([binary, "run", "--config", config],
                                  stdout=sidecar_log, stderr=subprocess.STDOUT))
    for i, port in enumerate(ports):
        wait_port(port, f"collector {i}")
    wait_port(proxy, "the sidecar")
    wait_port(admin, "the sidecar's admin listener")
    startup = open(os.path.join(work, "sidecar.log")).read()
    if not all(name in startup for name in names):
        fail(f"the startup line does not list every collector: {startup}")

    # --- phase one: all three collectors up
    traces = [f"{random.getrandbits(128):032x}" for _ in range(PHASE_ONE)]
    errors = {t for t in traces if random.random() < ERROR_SHARE}
    send(proxy, traces, errors)
    if tail:
        time.sleep(DECISION_WAIT + 1)
        views = settle(ports, None, 60)
    else:
        views = settle(ports, lambda v: sum(map(len, v)) >= PHASE_ONE, 60)
    where = {}
    for i, view in enumerate(views):
        for trace, spans in view.items():
            if trace in where:
                fail(f"trace {trace} on collectors {where[trace]} and {i}")
            where[trace] = i
            if trace in traces and owner(trace, names) != i:
                fail(f"trace {trace} on collector {i}, rendezvous names {owner(trace, names)}")
    for trace in errors:
        i = where.get(trace)
        if i is None or views[i][trace] != 2:
            fail(f"error trace {trace} not whole on one collector: {i} {views[i][trace] if i is not None else 0} spans")
    shares = [sum(1 for t in traces if owner(t, names) == i) / PHASE_ONE for i in range(3)]
    print(f"ok: {PHASE_ONE} traces ({len(errors)} with an error) over 3 collectors "
          f"(shares {', '.join(f'{s:.2f}' for s in shares)}): no trace id on two collectors, "
          "each on its rendezvous owner, every error trace whole on one", flush=True)
    others = [t for t in traces if t not in errors]
    if tail:
        kept = [t for t in others if t in where]
        broken = [t for t in kept if views[where[t]][t] != 2]
        if broken:
            fail(f"{len(broken)} kept traces are not whole, e.g. {broken[0]}")
        share = len(kept) / len(others)
        if abs(share - 0.1) > 0.03:
            fail(f"tail sampling kept {share:.3f} of the traces without errors, want 0.1 +- 0.03")
        print(f"ok: tail sampling (errors + probabilistic 0.1): every error trace kept, "
              f"{share:.3f} of the others kept, each whole", flush=True)
    else:
        missing = [t for t in others if views[where.get(t, 0)].get(t) != 2]
        if missing:
            fail(f"{len(missing)} traces not whole, e.g. {missing[0]}")
        print("skip: tail sampling not built (every trace checked whole instead)", flush=True)

    # --- phase two: collector 1 stopped
    procs[1].send_signal(signal.SIGTERM)
    procs[1].wait(timeout=20)
    later = [f"{random.getrandbits(128):032x}" for _ in range(PHASE_TWO)]
    later_errors = {t for t in later if random.random() < ERROR_SHARE}
    send(proxy, later, later_errors)
    expect = {i: {t for t in later if owner(t, names) == i} for i in (0, 2)}
    up = [ports[0], ports[2]]

    def arrived(views):
        return all(
            all(views[k].get(t) == 2 for t in expect[i] if not tail or t in later_errors)
            for k, i in enumerate((0, 2)))
    after = settle(up, arrived, 60)
    if tail:
        after = settle(up, None, 60)
    for k, i in enumerate((0, 2)):
        for trace in after[k]:
            if trace in later and trace not in expect[i]:
                fail(f"trace {trace} of collector {owner(trace, names)}'s share moved to collector {i}")
    text = scrape(admin)
    down = (f'tracehop_export_endpoint_requests_total{{endpoint="{names[1]}",'
            'exporter="zipkin",result="connect_error"}')
    failing = [line for line in text.splitlines() if line.startswith(down)]
    if not failing or float(failing[0].split()[-1]) == 0:
        fail(f"no connection errors counted for the stopped collector ({down})")
    for i in (0, 2):
        up_errors = (f'tracehop_export_endpoint_requests_total{{endpoint="{names[i]}",'
                     'exporter="zipkin",result="connect_error"} 0')
        if up_errors not in text:
            fail(f"connection errors counted for collector {i}, which is up")
    moved = len(later) - len(expect[0]) - len(expect[2])
    print(f"ok: collector 1 stopped: the {len(expect[0]) + len(expect[2])} later traces of the others "
          f"landed whole on their owners, none of its {moved} moved; its connection errors counted",
          flush=True)


if __name__ == "__main__":
    main()
