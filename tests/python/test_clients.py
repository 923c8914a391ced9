"""The platform through the eyes of another bank system written in Python.

Stubs are generated from the repository's proto/ with grpcio-tools at start, so these
tests see the published contract exactly as a Python team would. grpcio is a C-core
client: it sends each small streamed message in its own HTTP/2 DATA frame, which the
project's Rust clients never do.

Run by `cargo test -p crm-system-tests --test other_languages`, which starts identity,
customer-profile and analytics and passes their addresses:
  CRM_IDENTITY_ADDR, CRM_CUSTOMERS_ADDR,
  CRM_ANALYTICS_ADDR                     host:port of each service
  CRM_ADMIN_PASSWORD                     password of the first administrator, `admin`
  CRM_PY_STREAMS, CRM_PY_RECORDS         parallel import streams and records in each
"""

import concurrent.futures
import importlib.resources
import os
import pathlib
import sys
import tempfile
import unittest

import grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_tools import protoc

REPO = pathlib.Path(__file__).resolve().parents[2]
IDENTITY = os.environ.get("CRM_IDENTITY_ADDR", "127.0.0.1:50051")
CUSTOMERS = os.environ.get("CRM_CUSTOMERS_ADDR", "127.0.0.1:50052")
ANALYTICS = os.environ.get("CRM_ANALYTICS_ADDR", "127.0.0.1:50053")
ADMIN_PASSWORD = os.environ.get("CRM_ADMIN_PASSWORD", "")

# The CI figures; more for a longer run (e.g. CRM_PY_STREAMS=16 CRM_PY_RECORDS=20000).
STREAMS = int(os.environ.get("CRM_PY_STREAMS", "4"))
RECORDS_PER_STREAM = int(os.environ.get("CRM_PY_RECORDS", "2000"))

REFLECTION_VERSIONS = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")


def generate_stubs():
    """Compiles every .proto under proto/ into a temporary package directory."""
    out = tempfile.mkdtemp(prefix="crm-py-stubs-")
    proto_root = REPO / "proto"
    files = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    args = ["grpc_tools.protoc", f"-I{proto_root}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + files) != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {files}")
    sys.path.insert(0, out)


generate_stubs()

from crm.analytics.v1 import analytics_pb2, analytics_pb2_grpc  # noqa: E402
from crm.common.v1 import common_pb2  # noqa: E402
from crm.customer.v1 import customer_pb2, customer_pb2_grpc  # noqa: E402
from crm.identity.v1 import identity_pb2, identity_pb2_grpc  # noqa: E402


def login():
    with grpc.insecure_channel(IDENTITY) as channel:
        auth = identity_pb2_grpc.AuthServiceStub(channel)
        response = auth.Login(identity_pb2.LoginRequest(login="admin", password=ADMIN_PASSWORD), timeout=10)
        return response.tokens.access_token


def record(stream, i):
    return customer_pb2.SourceRecord(
        key=customer_pb2.SourceKey(source_system="PYTHON", source_customer_id=f"P{stream}-{i}"),
        source_version=1,
        party_kind=customer_pb2.PARTY_KIND_PERSONAL,
        id_type=customer_pb2.ID_TYPE_OTHER,
        id_number=f"PY{stream}{i:05d}",
        name=f"Py{stream}客户{i:05d}",
    )


def reflection_info(address, service, request):
    """One request on the reflection stream of `service` (v1 or v1alpha: the two
    versions have the same messages on the wire, so v1alpha's stubs serve both)."""
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        return next(iter(call(iter([request]), timeout=10)))


def listed_services(address, service):
    response = reflection_info(address, service, reflection_pb2.ServerReflectionRequest(list_services=""))
    return {s.name for s in response.list_services_response.service}


class FromPython(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.token = login()
        cls.metadata = (("authorization", f"Bearer {cls.token}"),)

    def customers(self, channel):
        return customer_pb2_grpc.CustomerServiceStub(channel)

    def test_four_parallel_import_streams_of_small_records_are_stored_and_found(self):
        def send(stream):
            # A channel per stream: four connections, each streaming as fast as
            # flow control lets it.
            with grpc.insecure_channel(CUSTOMERS) as channel:
                requests = (
                    customer_pb2.ImportSourceRecordsRequest(record=record(stream, i)) for i in range(RECORDS_PER_STREAM)
                )
                return self.customers(channel).ImportSourceRecords(requests, metadata=self.metadata, timeout=300)

        with concurrent.futures.ThreadPoolExecutor(max_workers=STREAMS) as pool:
            responses = list(pool.map(send, range(STREAMS)))
        for stream, response in enumerate(responses):
            self.assertEqual(response.accepted_count, RECORDS_PER_STREAM, f"stream {stream}")
            self.assertEqual(response.rejected_count, 0, f"stream {stream}")
            self.assertEqual([o.index for o in response.outcomes], list(range(RECORDS_PER_STREAM)))
            self.assertTrue(all(o.outcome == customer_pb2.UPSERT_OUTCOME_CREATED for o in response.outcomes))

        with grpc.insecure_channel(CUSTOMERS) as channel:
            customers = self.customers(channel)
            for stream in range(STREAMS):
                for i in (0, RECORDS_PER_STREAM // 2, RECORDS_PER_STREAM - 1):
                    found = customers.GetCustomer(
                        customer_pb2.GetCustomerRequest(
                            source_key=customer_pb2.SourceKey(source_system="PYTHON", source_customer_id=f"P{stream}-{i}")
                        ),
                        metadata=self.metadata,
                        timeout=10,
                    )
                    self.assertEqual(found.customer.name, f"Py{stream}客户{i:05d}")
                    self.assertEqual(found.customer.customer_number, responses[stream].outcomes[i].customer_number)

            # Every record of the last stream is found by name, page after page.
            last = STREAMS - 1
            names, token = [], ""
            while True:
                page = customers.SearchCustomers(
                    customer_pb2.SearchCustomersRequest(name_prefix=f"Py{last}客户", page_size=500, page_token=token),
                    metadata=self.metadata,
                    timeout=10,
                )
                names.extend(c.name for c in page.customers)
                token = page.next_page_token
                if not token:
                    break
            self.assertEqual(sorted(names), [f"Py{last}客户{i:05d}" for i in range(RECORDS_PER_STREAM)])

    def test_analytics_takes_facts_by_client_stream_and_reports_a_recompute_by_server_stream(self):
        with grpc.insecure_channel(ANALYTICS) as channel:
            analytics = analytics_pb2_grpc.AnalyticsServiceStub(channel)
            product = analytics_pb2.Product(
                product_code="PY-DEP", name="Python 存款", asset_class=analytics_pb2.ASSET_CLASS_DEPOSIT,
                risk_level=1, aum_weight_bp=10000,
            )
            analytics.UpsertProducts(analytics_pb2.UpsertProductsRequest(products=[product]), metadata=self.metadata, timeout=10)

            def snapshot(i, product_code="PY-DEP"):
                return analytics_pb2.LoadBalancesRequest(snapshot=analytics_pb2.BalanceSnapshot(
                    account_id=f"PY-{i}",
                    customer=analytics_pb2.CustomerRef(source_key=customer_pb2.SourceKey(source_system="PYTHON", source_customer_id=f"A{i}")),
                    product_code=product_code,
                    balance=common_pb2.Money(amount_minor=100_000 * i, currency_code="CNY"),
                    balance_date=common_pb2.Date(year=2026, month=10, day=1 + i % 28),
                ))

            requests = [snapshot(i) for i in range(500)] + [snapshot(500, "NO-SUCH")]
            report = analytics.LoadBalances(iter(requests), metadata=self.metadata, timeout=60).report
            self.assertEqual(report.accepted_count, 500)
            self.assertEqual([r.index for r in report.rejections], [500])
            self.assertEqual(report.rejections[0].violations[0].field, "snapshot.product_code")
            again = analytics.LoadBalances(iter(requests), metadata=self.metadata, timeout=60).report
            self.assertEqual(again.unchanged_count, 500)

            steps = list(analytics.RecomputeAll(analytics_pb2.RecomputeAllRequest(), metadata=self.metadata, timeout=60))
            self.assertTrue(steps and steps[-1].progress.finished)
            rules = analytics.ListLevelRules(analytics_pb2.ListLevelRulesRequest(), metadata=self.metadata, timeout=10)
            self.assertEqual([level.code for level in rules.rules[0].levels], ["potential", "gold", "platinum", "growth", "core"])
            sales = analytics_pb2.TargetIndicator(kind=analytics_pb2.TARGET_INDICATOR_KIND_PRODUCT_SALES, product_code="PY-DEP")
            target = analytics.IssueTarget(analytics_pb2.IssueTargetRequest(
                org_path="/HO/", indicator=sales, value=1_000_000,
                period_start=common_pb2.Date(year=2026, month=10, day=1), period_end=common_pb2.Date(year=2026, month=12, day=31),
            ), metadata=self.metadata, timeout=10).target
            progress = analytics.GetTargetProgress(
                analytics_pb2.GetTargetProgressRequest(target_id=target.target_id), metadata=self.metadata, timeout=30,
            ).progress
            self.assertEqual([(p.target.target_id, p.actual, p.has_progress) for p in progress], [(target.target_id, 0, True)])
            with self.assertRaises(grpc.RpcError) as unknown:
                analytics.GetCustomerValue(analytics_pb2.GetCustomerValueRequest(customer_number="999999999999"), metadata=self.metadata, timeout=10)
            self.assertEqual(unknown.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_reflection_lists_only_what_each_server_serves_in_both_versions(self):
        common = {"grpc.health.v1.Health", *REFLECTION_VERSIONS}
        for version in REFLECTION_VERSIONS:
            self.assertEqual(
                listed_services(IDENTITY, version),
                {"crm.identity.v1.AuthService", "crm.identity.v1.IdentityAdminService", *common},
                version,
            )
            self.assertEqual(listed_services(CUSTOMERS, version), {"crm.customer.v1.CustomerService", *common}, version)

    def test_reflection_describes_what_a_server_serves_and_nothing_else(self):
        for version in REFLECTION_VERSIONS:
            own = reflection_info(
                CUSTOMERS,
                version,
                reflection_pb2.ServerReflectionRequest(file_containing_symbol="crm.customer.v1.CustomerService"),
            )
            self.assertTrue(own.file_descriptor_response.file_descriptor_proto, version)
            with self.assertRaises(grpc.RpcError) as foreign:
                reflection_info(
                    CUSTOMERS,
                    version,
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="crm.identity.v1.AuthService"),
                )
            self.assertEqual(foreign.exception.code(), grpc.StatusCode.NOT_FOUND, version)

    def test_a_method_the_server_does_not_have_is_unimplemented(self):
        with grpc.insecure_channel(CUSTOMERS) as channel:
            nope = channel.unary_unary("/crm.customer.v1.CustomerService/Nope")
            with self.assertRaises(grpc.RpcError) as unknown_method:
                nope(b"", metadata=self.metadata, timeout=10)
            self.assertEqual(unknown_method.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

            # identity's Login sent to customer-profile.
            stray = identity_pb2_grpc.AuthServiceStub(channel)
            with self.assertRaises(grpc.RpcError) as other_service:
                stray.Login(identity_pb2.LoginRequest(login="admin", password=ADMIN_PASSWORD), timeout=10)
            self.assertEqual(other_service.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

            # A method the server has still wants a token.
            with self.assertRaises(grpc.RpcError) as no_token:
                self.customers(channel).GetCustomer(
                    customer_pb2.GetCustomerRequest(customer_number="800000000001"), timeout=10
                )
            self.assertEqual(no_token.exception.code(), grpc.StatusCode.UNAUTHENTICATED)


if __name__ == "__main__":
    unittest.main(verbosity=2)
