#!/usr/bin/env python3
"""A real gRPC peer (grpcio, gRPC's C-core) for the conformance checks.

  grpc_peer.py server PORT          serves helloworld.Greeter/SayHello on
                                    127.0.0.1:PORT until killed: answers
                                    b"Hello, " + request, or, for a request
                                    b"status:N" with N > 0, fails with status N
  grpc_peer.py client PORT N...     calls SayHello at 127.0.0.1:PORT once per
                                    code N (0 = a plain call) and exits 1
                                    unless each call ends with that status

Messages are raw bytes (no protobuf types): the sidecar never reads them.
"""

import sys
from concurrent import futures

import grpc

METHOD = "/helloworld.Greeter/SayHello"
CODES = {code.value[0]: code for code in grpc.StatusCode}


def say_hello(request, context):
    text = request.decode("ascii", "replace")
    if text.startswith("status:") and int(text[7:]) > 0:
        context.abort(CODES[int(text[7:])], "as asked")
    return b"Hello, " + request


def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(say_hello)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("helloworld.Greeter", {"SayHello": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def call(port, codes):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        say = channel.unary_unary(METHOD)
        for code in codes:
            request = f"status:{code}".encode()
            try:
                reply = say(request, timeout=10)
                got = 0
                assert reply == b"Hello, " + request, reply
            except grpc.RpcError as error:
                got = error.code().value[0]
            if got != code:
                sys.exit(f"SayHello asked for status {code}, ended with {got}")


def main():
    mode, port, *codes = sys.argv[1:]
    if mode == "server":
        serve(int(port))
    elif mode == "client":
        call(int(port), [int(code) for code in codes])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
