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
the server kept and still answers on), one `failed N: WHY` line per kind of
failure, and closes them all.
"""

import asyncio
import collections
import os
import resource
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle-clients\r\n\r\n"
STEP_TIMEOUT = 30.0   # seconds for one connect or one exchange
RELEASE_WAIT = 120.0  # seconds to wait for RELEASE_FILE at most
FAILURES = collections.Counter()  # why connections failed, printed at the end


async def exchange(reader, writer):
    """One request and its response (Content-Length framing): True, or
    ValueError naming a status line that is not 2xx."""
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
        raise ValueError(f"no Content-Length ({lines[0]})")  # the upstream always sets it
    await reader.readexactly(length)
    if not lines[0].split(" ")[1].startswith("2"):
        raise ValueError(lines[0])
    return True


async def open_one(host, port, gate):
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), STEP_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as err:
            FAILURES[f"connect: {type(err).__name__}"] += 1
            return None
        if not await answered(reader, writer, "first request"):
            writer.close()
            return None
        return reader, writer


async def answered(reader, writer, step):
    """One exchange within STEP_TIMEOUT; a failure is counted under STEP."""
    try:
        return await asyncio.wait_for(exchange(reader, writer), STEP_TIMEOUT)
    except ValueError as err:  # an answer, not a 2xx one
        FAILURES[f"{step}: {err}"] += 1
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError, IndexError) as err:
        FAILURES[f"{step}: {type(err).__name__}"] += 1
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
            return await answered(*conn, "second request")

    alive = await asyncio.gather(*(check(c) for c in conns))
    print(f"alive {sum(alive)}", flush=True)
    for why, n in sorted(FAILURES.items()):
        print(f"failed {n}: {why}", flush=True)
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
