#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into corpus/<target>/seed-*.

The messages are encoded by hand (a few protobuf fields each), so no
protobuf package is needed. Run from fuzz/: python3 seeds/make_seeds.py
"""
import os
import struct

LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
RESOURCE = "type.googleapis.com/envoy.service.discovery.v3.Resource"
CLUSTER = "greeter.default.svc.cluster.local:80"


def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def field(number, value):
    """A length-delimited field (bytes, str or an encoded message)."""
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def number(field_number, value):
    """A varint field."""
    return varint(field_number << 3) + varint(value)


def any_of(type_url, value):
    return field(1, type_url) + field(2, value)


def request(type_url, names=(), version="", nonce="", node=None, error=None):
    out = b""
    if version:
        out += field(1, version)
    if node:
        out += field(2, field(1, node))
    for name in names:
        out += field(3, name)
    out += field(4, type_url)
    if nonce:
        out += field(5, nonce)
    if error:
        out += field(6, number(1, 3) + field(2, error))
    return out


def step(message):
    return b"\x00" + struct.pack(">H", len(message)) + message


# Resources as the control plane serves them.
ads = field(3, b"")  # ConfigSource.ads
hcm = (
    field(3, field(1, ads) + field(2, CLUSTER))  # rds: config_source, route_config_name
    + field(5, field(1, "envoy.filters.http.router") + field(4, any_of(ROUTER, b"")))
)
listener = field(1, "greeter") + field(19, field(1, any_of(HCM, hcm)))
route = field(1, CLUSTER) + field(
    2,
    field(1, "greeter")
    + field(2, "*")
    + field(3, field(1, field(1, "")) + field(2, field(1, CLUSTER))),
)
cluster = (
    field(1, CLUSTER)
    + number(2, 3)  # type: EDS
    + field(3, field(1, ads))  # eds_cluster_config.eds_config
    + number(6, 0)  # lb_policy: ROUND_ROBIN
)


def lb_endpoint(ip, port, health):
    socket = number(1, 0) + field(2, ip) + number(3, port)
    return field(1, field(1, field(1, socket))) + number(2, health)


assignment = field(1, CLUSTER) + field(
    2,
    field(1, field(2, "zone-a"))
    + field(2, lb_endpoint("10.0.0.1", 8080, 1))
    + field(2, lb_endpoint("10.0.0.2", 8080, 3))
    + field(3, number(1, 1)),
)


def response(type_url, resources, version="v1", nonce="1"):
    out = field(1, version)
    for resource in resources:
        out += field(2, any_of(type_url, resource))
    out += field(4, type_url) + field(5, nonce)
    return out


def framed(messages):
    return b"".join(struct.pack(">H", len(m)) + m for m in messages)


def write(target, name, data):
    path = os.path.join("corpus", target, "seed-" + name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


write("ads_session", "chain", b"".join([
    step(request(LDS, ["greeter"], node="seed")),
    step(request(RDS, [CLUSTER])),
    step(request(CDS, [CLUSTER])),
    step(request(EDS, [CLUSTER])),
    b"\x85",
    step(request(EDS, [CLUSTER], version="x-2", nonce="4")),
]))
write("ads_session", "wildcard-and-nack", b"".join([
    step(request(CDS, [], node="seed")),
    step(request(CDS, [], nonce="1", error="rejected")),
    b"\xbf",
    step(request(LDS, ["*", "greeter:80", "greeter.default"])),
    step(request("type.googleapis.com/unknown.Type", ["x"])),
]))
for kind, resource in enumerate([listener, route, cluster, assignment]):
    write("client_decode", "resource-%d" % kind, bytes([kind]) + resource)
    wrapped = field(3, "greeter") + field(2, any_of([LDS, RDS, CDS, EDS][kind], resource))
    write("client_decode", "wrapped-%d" % kind, bytes([kind | 4]) + wrapped)
write("client_decode", "responses", b"\x80" + framed([
    response(LDS, [listener]),
    response(RDS, [route], nonce="2"),
    response(CDS, [cluster], nonce="3"),
    response(EDS, [assignment], nonce="4"),
]))
