#!/usr/bin/env python3
"""Loopback stand-ins for the conformance checks.

  fake_services.py upstream PORT        an app: GET echoes request headers as JSON,
                                        PUT/POST count the body (Content-Length or
                                        chunked) and answer the byte count,
                                        GET /big?bytes=N streams N zero bytes chunked.
  fake_services.py sink PORT DIR        a Zipkin collector stand-in: every
                                        POST /api/v2/spans body is saved as DIR/batch-N.json
                                        (gunzipped) and answered 202.
  fake_services.py otlp-sink PORT DIR   an OTLP/HTTP endpoint stand-in: every POST
                                        body is saved as DIR/batch-N.pb (gunzipped) and
                                        answered 200 with an empty ExportTraceServiceResponse.
"""
import gzip
import http.server
import json
import os
import sys
import threading


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/big"):
            n = int(self.path.split("bytes=")[1]) if "bytes=" in self.path else 1 << 20
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\0" * 65536
            while n > 0:
                part = chunk[: min(n, len(chunk))]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                n -= len(part)
            self.wfile.write(b"0\r\n\r\n")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.reply(200, json.dumps({"path": self.path, "headers": headers}).encode())

    def read_body(self):
        total = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return total
                left = size
                while left:
                    left -= len(self.rfile.read(min(left, 1 << 20)))
                self.rfile.readline()
                total += size
        left = int(self.headers.get("Content-Length", "0"))
        while left:
            got = len(self.rfile.read(min(left, 1 << 20)))
            if got == 0:
                break
            left -= got
            total += got
        return total

    def do_PUT(self):
        self.reply(200, str(self.read_body()).encode(), "text/plain")

    do_POST = do_PUT


class Sink(Upstream):
    lock = threading.Lock()
    count = 0
    out_dir = "."
    suffix = "json"
    answer = (202, "application/json")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        with Sink.lock:
            Sink.count += 1
            path = os.path.join(Sink.out_dir, f"batch-{Sink.count}.{self.suffix}")
        with open(path, "wb") as f:
            f.write(body)
        # Keep the upload headers too: the conformance script checks `b3: 0`.
        with open(path + ".headers", "w") as f:
            json.dump({k.lower(): v for k, v in self.headers.items()}, f)
        # An empty body is an empty message: OTLP's full success.
        self.reply(self.answer[0], b"", self.answer[1])


class OtlpSink(Sink):
    suffix = "pb"
    answer = (200, "application/x-protobuf")


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    handler = Upstream
    if mode in ("sink", "otlp-sink"):
        Sink.out_dir = sys.argv[3]
        handler = Sink if mode == "sink" else OtlpSink
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
