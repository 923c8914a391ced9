"""Bad input at every RPC: the sweep of issue #18.

Walks the services each server describes by reflection (so a new service or RPC is
covered without new code here) and sends every RPC generated bad input, each field at
a time, then all fields at once: overlong strings, NUL and control characters,
invalid enum numbers, negative and huge numbers (page sizes among them), huge
repeated fields and maps, malformed and foreign page tokens, a message over the
server's size limit; client-streaming RPCs get a stream of such messages and a stream
of more messages than any stream may hold. Every RPC is also called with malformed
tokens in the `authorization` metadata. No answer may be INTERNAL or UNKNOWN (a bug or
a client's mistake paging an SRE).

Only refused input is sent: calls that carry a valid token carry at least one bad
field, and well-formed requests go out only with a malformed token. Whether anything
was stored is checked by the Rust test that runs this script
(tests/tests/sweep/main.rs), which counts every table's rows before and after.

Environment (set by that test):
  CRM_SWEEP_ADDRS   comma-separated host:port of the servers to sweep
  CRM_SWEEP_TOKEN   an administrator's access token (every permission)
"""

import base64
import os
import sys
import time

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

ADDRS = [a for a in os.environ.get("CRM_SWEEP_ADDRS", "").split(",") if a]
TOKEN = os.environ.get("CRM_SWEEP_TOKEN", "")
SKIPPED_SERVICES = ("grpc.health.", "grpc.reflection.")
FORBIDDEN = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
TIMEOUT_S = 60
# Larger than the server's default `grpc.max_message_bytes` (4 MiB).
OVERSIZE = 5 * 1024 * 1024

BAD_STRINGS = [
    "x" * 100_000,
    "王" * 20_000,
    "a\x00b",
    "\x00",
    "a\x1b[31mb\x07",
    "tab\there\nline\r\n",
    "\u0085\u2028",
    "   ",
    "\ufeff",
    "%s%n'\";--",
]


def b64(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_PAGE_TOKENS = [
    "not a token!",
    "=" * 10,
    b64("some-other-list:1"),
    b64("audit:1"),
    b64("search:-5"),
    b64("search:99999999999999999999999"),
    b64("\x00:\x00"),
    "A" * 300,
    "a\x00b",
]
INT32 = [-1, -(2**31), 2**31 - 1]
INT64 = [-1, -(2**63), 2**63 - 1]
UINT = [2**32 - 1]
DOUBLE = [float("nan"), float("inf"), -1e308]
BAD_ENUMS = [-1, 999, 2**31 - 1]
HUGE_COUNT = 100_000


def bad_scalars(field):
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return BAD_PAGE_TOKENS + BAD_STRINGS if field.name.endswith("page_token") else BAD_STRINGS
    if t == FieldDescriptor.TYPE_BYTES:
        return [b"\x00" * 100_000, b"\xff\xfe"]
    if t == FieldDescriptor.TYPE_ENUM:
        return BAD_ENUMS
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return INT32
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return INT64
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return UINT
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return DOUBLE
    return []  # bools: nothing is bad about them


def is_map(field):
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def is_repeated(field):
    if hasattr(field, "is_repeated"):  # protobuf 6 and later
        return field.is_repeated
    return field.label == FieldDescriptor.LABEL_REPEATED


def mutations(descriptor, depth=0):
    """(label, setter) pairs: each setter puts one bad value into a fresh message."""
    out = []
    for field in descriptor.fields:
        name = field.name
        if is_map(field):
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            if key_field.type == FieldDescriptor.TYPE_STRING and value_field.type == FieldDescriptor.TYPE_STRING:
                for value in BAD_STRINGS:
                    out.append((f"{name}[k]={value[:8]!r}", lambda m, n=name, v=value: getattr(m, n).__setitem__("k", v)))
                    out.append((f"{name}[{value[:8]!r}]", lambda m, n=name, v=value: getattr(m, n).__setitem__(v, "v")))
                out.append((f"{name} x{HUGE_COUNT}", lambda m, n=name: getattr(m, n).update({f"k{i}": "v" for i in range(HUGE_COUNT)})))
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            inner = mutations(field.message_type, depth + 1)
            if is_repeated(field):
                out.append((f"{name} x10000", lambda m, n=name: [getattr(m, n).add() for _ in range(10_000)]))
                for label, setter in inner:
                    out.append((f"{name}[0].{label}", lambda m, n=name, s=setter: s(getattr(m, n).add())))
            else:
                for label, setter in inner:
                    out.append((f"{name}.{label}", lambda m, n=name, s=setter: s(getattr(m, n))))
            continue
        values = bad_scalars(field)
        if is_repeated(field):
            if field.type == FieldDescriptor.TYPE_STRING:
                out.append((f"{name} x{HUGE_COUNT}", lambda m, n=name: getattr(m, n).extend(["1"] * HUGE_COUNT)))
            for value in values:
                out.append((f"{name}[]={value!r:.20}", lambda m, n=name, v=value: getattr(m, n).extend([v, v])))
        else:
            for value in values:
                out.append((f"{name}={value!r:.20}", lambda m, n=name, v=value: setattr(m, n, v)))
    return out


def all_at_once(descriptor, depth=0):
    """A setter filling every field with a bad value at once."""

    def fill(m, d=descriptor, level=depth):
        for field in d.fields:
            if field.containing_oneof is not None and m.WhichOneof(field.containing_oneof.name):
                continue
            if is_map(field) or field.type == FieldDescriptor.TYPE_BOOL:
                continue
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                if level < 3:
                    target = getattr(m, field.name).add() if is_repeated(field) else getattr(m, field.name)
                    all_at_once(field.message_type, level + 1)(target)
                continue
            values = bad_scalars(field)
            if not values:
                continue
            if is_repeated(field):
                getattr(m, field.name).extend(values[:1])
            else:
                setattr(m, field.name, values[0] if field.type != FieldDescriptor.TYPE_STRING else "a\x00" + "x" * 5000)

    return fill


def oversize(descriptor):
    """A setter making the message larger than the server accepts, or None."""
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING and not is_repeated(field):
            return lambda m, n=field.name: setattr(m, n, "x" * OVERSIZE)
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE and not is_repeated(field) and not is_map(field):
            inner = oversize(field.message_type)
            if inner:
                return lambda m, n=field.name, s=inner: s(getattr(m, n))
    return None


BAD_AUTH = [
    "",
    "Bearer",
    "Bearer ",
    "Basic YWRtaW46cGFzc3dvcmQ=",
    "bearer a.b.c",
    "Bearer a.b",
    "Bearer a!.b!.c!",
    "Bearer " + "A" * 4000,
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
    "Bearer eyJhbGciOiJFZERTQSIsImtpZCI6Im5vLXN1Y2gta2V5In0.eyJzdWIiOiJhZG1pbiJ9.AAAA",
]


def tampered_tokens():
    if not TOKEN:
        return []
    head, payload, signature = TOKEN.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged = b64('{"sub":"admin","perms":["*"]}')
    return [
        f"Bearer {head}.{payload}.{flipped}",
        f"Bearer {head}.{forged}.{signature}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN} {TOKEN}",
    ]


class Sweep:
    def __init__(self):
        self.calls = 0
        self.codes = {}
        self.failures = []

    def record(self, where, code, details):
        self.calls += 1
        self.codes[code] = self.codes.get(code, 0) + 1
        if code in FORBIDDEN:
            self.failures.append(f"{where}: {code.name} {details!r:.300}")

    def call(self, channel, path, method, request_or_stream, metadata, where):
        if method.client_streaming:
            stub = channel.stream_unary(path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=bytes)
        else:
            stub = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=bytes)
        try:
            stub(request_or_stream, metadata=metadata, timeout=TIMEOUT_S)
            self.record(where, grpc.StatusCode.OK, "")
        except grpc.RpcError as e:
            self.record(where, e.code(), e.details())

    def sweep_method(self, channel, service, method):
        path = f"/{service.full_name}/{method.name}"
        message = message_factory.GetMessageClass(method.input_type)
        auth = (("authorization", f"Bearer {TOKEN}"),)
        cases = mutations(method.input_type)
        cases.append(("every field", all_at_once(method.input_type)))
        big = oversize(method.input_type)
        if big:
            cases.append((f"a message over {OVERSIZE} bytes", big))
        requests = []
        for label, setter in cases:
            m = message()
            setter(m)
            if m.ByteSize() == 0:
                continue  # nothing bad was set (e.g. an empty repeated field)
            requests.append((label, m))
        if method.client_streaming:
            self.call(channel, path, method, iter([m for _, m in requests]), auth, f"{path} stream of {len(requests)} bad messages")
            for label, m in requests:
                self.call(channel, path, method, iter([m]), auth, f"{path} stream [{label}]")
            self.call(channel, path, method, (message() for _ in range(20_000)), auth, f"{path} stream of 20000 empty messages")
        else:
            for label, m in requests:
                self.call(channel, path, method, m, auth, f"{path} [{label}]")
        # Well-formed (empty) requests with malformed tokens.
        for bad in BAD_AUTH + tampered_tokens():
            metadata = (("authorization", bad),) if bad else ()
            request = iter([message()]) if method.client_streaming else message()
            self.call(channel, path, method, request, metadata, f"{path} authorization={bad[:40]!r}")
        return len(requests)

    def sweep_server(self, addr):
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        with grpc.insecure_channel(addr, options=options) as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
            database = ProtoReflectionDescriptorDatabase(channel)
            pool = descriptor_pool.DescriptorPool(database)
            names = [s for s in database.get_services() if not s.startswith(SKIPPED_SERVICES)]
            if not names:
                self.failures.append(f"{addr}: reflection lists no service to sweep")
            for name in sorted(names):
                service = pool.FindServiceByName(name)
                for method in service.methods:
                    if method.server_streaming:
                        continue  # none yet; they would need a reader
                    started = time.monotonic()
                    sent = self.sweep_method(channel, service, method)
                    print(f"{addr} {service.full_name}/{method.name}: {sent} bad requests, {time.monotonic() - started:.1f} s", flush=True)


def main():
    if not ADDRS or not TOKEN:
        print("set CRM_SWEEP_ADDRS and CRM_SWEEP_TOKEN", file=sys.stderr)
        return 2
    sweep = Sweep()
    for addr in ADDRS:
        sweep.sweep_server(addr)
    summary = ", ".join(f"{code.name} {n}" for code, n in sorted(sweep.codes.items(), key=lambda c: c[0].value[0]))
    print(f"{sweep.calls} calls: {summary}")
    for failure in sweep.failures:
        print(f"FORBIDDEN ANSWER {failure}", file=sys.stderr)
    print(f"sweep: {sweep.calls} calls, {len(sweep.failures)} answered INTERNAL or UNKNOWN")
    return 1 if sweep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
