#!/usr/bin/env python3
"""Runs checks in a page loaded by headless Chromium and prints their outcome.

  viewer_probe.py BROWSER URL WIDTH < SCRIPT

Loads URL in a WIDTH x 900 viewport, waits for the load event, then runs
SCRIPT (read from stdin) as the body of an async function in the page. The
script calls `check(what, problem)` once per assertion, `problem` being
falsy when it holds or the reason it does not; each call prints a line
"ok: what" or "FAIL: what: problem". Helpers: `await waitFor(fn, what)` polls
`fn()` until it returns something truthy (that value) or throws after 10 s
naming `what`; `await idle()` waits until the viewer's status line no longer
says it is loading.

Chromium is driven with the DevTools protocol over a pipe
(--remote-debugging-pipe: commands on its fd 3, replies on its fd 4, each
message JSON ended by a NUL byte), so no debugging port is opened and only
the standard library is needed. Exit status 1, with the reason on stderr,
when the page cannot be loaded, the script throws or anything takes longer
than the deadline.
"""
import fcntl
import json
import os
import select
import shutil
import sys
import tempfile
import time

DEADLINE_SECONDS = 60

PRELUDE = """
const waitFor = async (fn, what) => {
  const until = Date.now() + 10000;
  for (;;) {
    const value = fn();
    if (value) return value;
    if (Date.now() > until) throw new Error('timed out waiting for ' + what);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};
const results = [];
const check = (what, problem) => results.push(problem ? 'FAIL: ' + what + ': ' + problem : 'ok: ' + what);
const idle = () => waitFor(() => {
  const status = document.getElementById('status');
  return status && !/Loading/.test(status.textContent);
}, 'the viewer to finish loading');
"""


class ProbeError(Exception):
    pass


class Browser:
    """One headless Chromium and one page in it."""

    def __init__(self, binary, profile):
        path = shutil.which(binary)
        if not path:
            raise ProbeError(f"browser {binary!r} not found")
        to_browser_read, to_browser = os.pipe()
        from_browser, from_browser_write = os.pipe()
        # Keep the pipe ends away from 3 and 4, which the child needs free.
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
                for fd in (to_browser_read, from_browser_write)]
        for fd in (to_browser_read, from_browser_write):
            os.close(fd)
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--remote-debugging-pipe", "about:blank",
        ]
        self.pid = os.posix_spawn(path, [path, *flags], os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, ends[0], 3),
            (os.POSIX_SPAWN_DUP2, ends[1], 4),
            # Its own messages go to this script's stderr.
            (os.POSIX_SPAWN_DUP2, 2, 1),
        ])
        for fd in ends:
            os.close(fd)
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.buffer = b""
        self.next_id = 0
        self.events = []
        self.deadline = time.monotonic() + DEADLINE_SECONDS

    def send(self, method, params=None, session=None):
        """Sends one command and returns its result."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.receive()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise ProbeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method):
        """Waits for an event, including one that came in already."""
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(self.receive())

    def receive(self):
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ProbeError(f"no answer from the browser within {DEADLINE_SECONDS} s")
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if ready:
                chunk = os.read(self.from_browser, 65536)
                if not chunk:
                    raise ProbeError("the browser closed its pipe")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self):
        try:
            self.send("Browser.close")
        except (ProbeError, OSError):
            pass
        for _ in range(50):
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                return
            time.sleep(0.1)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)


def run(browser, url, width, script):
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                 session)
    browser.send("Page.enable", session=session)
    navigation = browser.send("Page.navigate", {"url": url}, session)
    if navigation.get("errorText"):
        raise ProbeError(f"could not load {url}: {navigation['errorText']}")
    browser.wait_event("Page.loadEventFired")
    answer = browser.send("Runtime.evaluate", {
        "expression": f"(async () => {{ {PRELUDE}\nawait (async () => {{\n{script}\n}})();\n"
                      "return results.join('\\n'); })()",
        "awaitPromise": True,
        "returnByValue": True,
    }, session)
    if "exceptionDetails" in answer:
        details = answer["exceptionDetails"]
        raise ProbeError(details.get("exception", {}).get("description") or details.get("text"))
    return answer["result"].get("value") or ""


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    binary, url, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
    script = sys.stdin.read()
    with tempfile.TemporaryDirectory(prefix="viewer-probe-") as profile:
        browser = Browser(binary, profile)
        try:
            print(run(browser, url, width, script))
        except ProbeError as error:
            sys.exit(f"viewer_probe: {error}")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
