#!/usr/bin/env python3
"""Calls greet.Greeter/SayHello through gRPC's own xDS client (grpcio).

Used by the control plane's interop test: a standard gRPC xDS client, not
ours, must balance across greeter servers through the control plane.

    xds_greeter_client.py --bootstrap bootstrap.json --target xds:///greeter --count 300
        makes 300 calls and prints one JSON object:
        {"ok": N, "failed": N, "by_backend": {"<served_by>": N, ...}, "errors": {"<code>": N}}

    xds_greeter_client.py --bootstrap bootstrap.json --target xds:///greeter --batches
        keeps one channel open and reads a call count per line from standard
        input, printing one such JSON object per line read (so a test can
        change the backends between batches and watch this client follow).

    --rpc health calls grpc.health.v1.Health/Check instead, counting answers by
    status ("SERVING", "NOT_SERVING") in by_backend: a test tells which
    backends got the calls by making some NOT_SERVING (for method routing).

    --xds-creds uses grpc.xds_channel_credentials (fallback: insecure), so the
    TLS settings of the control plane's Cluster (gRPC A29) apply, with the
    certificates of the bootstrap's certificate_providers; without it the
    channel is grpc.insecure_channel, which ignores them.

The bootstrap file is what GRPC_XDS_BOOTSTRAP points at: the control plane's
address and this client's node. Requests and replies are encoded by hand
(two string fields), so only grpcio is needed.
"""

import argparse
import json
import os
import sys


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_request(name):
    """greet.HelloRequest{name}: field 1, length-delimited."""
    data = name.encode("utf-8")
    return b"\x0a" + varint(len(data)) + data


def decode_reply(data):
    """greet.HelloReply: message = 1, served_by = 2 (strings), connection_id = 3."""
    fields = {}
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = read_varint(data, pos)
            fields[number] = data[pos:pos + length].decode("utf-8")
            pos += length
        elif wire == 0:
            fields[number], pos = read_varint(data, pos)
        else:
            raise ValueError("unexpected wire type %d in HelloReply" % wire)
    return {"message": fields.get(1, ""), "served_by": fields.get(2, "")}


def decode_health(data):
    """grpc.health.v1.HealthCheckResponse: status = 1 (enum), as served_by."""
    status = 0
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        if key == 0x08:
            status, pos = read_varint(data, pos)
        else:
            raise ValueError("unexpected field %d in HealthCheckResponse" % (key >> 3))
    names = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
    return {"message": "", "served_by": names.get(status, str(status))}


# What each --rpc calls: (method path, request for call i, reply decoder).
RPCS = {
    "hello": ("/greet.Greeter/SayHello", lambda i: encode_request("interop-%d" % i), decode_reply),
    "health": ("/grpc.health.v1.Health/Check", lambda i: b"", decode_health),
}


def read_varint(data, pos):
    value = 0
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def run_batch(call, count, timeout, rpc="hello"):
    import grpc

    _, request, decode = RPCS[rpc]
    by_backend = {}
    errors = {}
    ok = 0
    for i in range(count):
        try:
            reply = decode(call(request(i), timeout=timeout))
            by_backend[reply["served_by"]] = by_backend.get(reply["served_by"], 0) + 1
            ok += 1
        except grpc.RpcError as error:
            key = "%s: %s" % (error.code().name, error.details())
            errors[key] = errors.get(key, 0) + 1
    return {"ok": ok, "failed": count - ok, "by_backend": by_backend, "errors": errors}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="xDS bootstrap JSON file")
    parser.add_argument("--target", default="xds:///greeter")
    parser.add_argument("--count", type=int, default=300, help="calls to make")
    parser.add_argument("--batches", action="store_true",
                        help="read call counts from standard input, one batch per line")
    parser.add_argument("--call-timeout", type=float, default=20.0,
                        help="deadline of each call, seconds (the first one waits for xDS)")
    parser.add_argument("--rpc", choices=sorted(RPCS), default="hello",
                        help="hello: greet.Greeter/SayHello; health: grpc.health.v1.Health/Check")
    parser.add_argument("--xds-creds", action="store_true",
                        help="xDS channel credentials: TLS as the control plane's Cluster says")
    args = parser.parse_args()

    # Must be set before grpc starts its xDS client.
    os.environ["GRPC_XDS_BOOTSTRAP"] = args.bootstrap
    import grpc

    if args.xds_creds:
        import grpc.experimental
        credentials = grpc.xds_channel_credentials(
            grpc.experimental.insecure_channel_credentials())
        channel = grpc.secure_channel(args.target, credentials)
    else:
        channel = grpc.insecure_channel(args.target)
    with channel:
        call = channel.unary_unary(RPCS[args.rpc][0])
        if not args.batches:
            print(json.dumps(run_batch(call, args.count, args.call_timeout, args.rpc)), flush=True)
            return
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            print(json.dumps(run_batch(call, int(line), args.call_timeout, args.rpc)), flush=True)


if __name__ == "__main__":
    main()
