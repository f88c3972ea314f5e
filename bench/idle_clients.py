#!/usr/bin/env python3
"""Holds N idle HTTP/1.1 keep-alive connections to one server: the client of
compare.sh's idle-10k workload.

Usage: idle_clients.py HOST PORT N RELEASE_FILE

Opens N connections (at most 256 connecting at once), sends one GET / on
each and reads its response, so every connection has served a request and
sits idle in keep-alive, as a browser's or a pool's would. Then prints
`open OPENED FAILED SECONDS` and waits until RELEASE_FILE exists (compare.sh
creates it once it has read the server's memory; 120 s at most). Then sends a
second GET on every open connection, prints `alive ALIVE` (the connections
the server kept and still answers on) and closes them all.
"""

import asyncio
import os
import resource
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle-clients\r\n\r\n"
STEP_TIMEOUT = 30.0   # seconds for one connect or one exchange
RELEASE_WAIT = 120.0  # seconds to wait for RELEASE_FILE at most


async def exchange(reader, writer):
    """One request and its response (Content-Length framing); True if 2xx."""
    writer.write(REQUEST)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        return False  # every target answers with Content-Length (the upstream sets it)
    await reader.readexactly(length)
    return lines[0].split(" ")[1].startswith("2")


async def open_one(host, port, gate):
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), STEP_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            return None
        try:
            ok = await asyncio.wait_for(exchange(reader, writer), STEP_TIMEOUT)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ValueError, IndexError):
            ok = False
        if not ok:
            writer.close()
            return None
        return reader, writer


async def still_alive(conn):
    reader, writer = conn
    try:
        return await asyncio.wait_for(exchange(reader, writer), STEP_TIMEOUT)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError, ValueError, IndexError):
        return False


async def main(host, port, count, release_file):
    gate = asyncio.Semaphore(256)
    start = time.monotonic()
    results = await asyncio.gather(*(open_one(host, port, gate) for _ in range(count)))
    conns = [c for c in results if c is not None]
    print(f"open {len(conns)} {count - len(conns)} {time.monotonic() - start:.2f}", flush=True)
    deadline = time.monotonic() + RELEASE_WAIT
    while not os.path.exists(release_file) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    gate = asyncio.Semaphore(256)

    async def check(conn):
        async with gate:
            return await still_alive(conn)

    alive = await asyncio.gather(*(check(c) for c in conns))
    print(f"alive {sum(alive)}", flush=True)
    for _, writer in conns:
        writer.close()


if __name__ == "__main__":
    if len(sys.argv) != 5 or not sys.argv[2].isdigit() or not sys.argv[3].isdigit():
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = int(sys.argv[3]) + 64
    if hard != resource.RLIM_INFINITY and hard < need:
        print(f"idle_clients.py: the open-file limit is {hard}, {need} needed (ulimit -n)",
              file=sys.stderr)
        sys.exit(2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY else hard, hard))
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
