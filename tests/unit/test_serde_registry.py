"""SchemaRegistryClient and Serde-with-registry against an in-process fake registry."""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from streamserve.records import Event, Prediction
from streamserve.serde import (
    DecodeError,
    RegistryError,
    SchemaCatalog,
    SchemaRegistryClient,
    Serde,
)

REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass
class FakeRegistry:
    """The two Confluent Schema Registry endpoints streamserve uses, in memory."""

    next_id: int = 100
    ids_by_schema: dict[str, int] = field(default_factory=dict)
    schemas: dict[int, dict[str, Any]] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    fail_status: int | None = None
    delay_s: float = 0.0
    raw_response: bytes | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, schema_json: str, schema_type: str | None = None) -> int:
        with self.lock:
            schema_id = self.ids_by_schema.get(schema_json)
            if schema_id is None:
                schema_id = self.next_id
                self.next_id += 1
                self.ids_by_schema[schema_json] = schema_id
                answer: dict[str, Any] = {"schema": schema_json}
                if schema_type is not None:
                    answer["schemaType"] = schema_type
                self.schemas[schema_id] = answer
            return schema_id

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_status is not None:
            return self.fail_status, {"error_code": self.fail_status * 100, "message": "boom"}
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 3 and parts[0] == "subjects":
            schema_json = json.loads(body)["schema"]
            schema_id = self.add(schema_json)
            self.subjects.setdefault(parts[1], []).append(schema_id)
            return 200, {"id": schema_id}
        if method == "GET" and len(parts) == 3 and parts[:2] == ["schemas", "ids"]:
            answer = self.schemas.get(int(parts[2]))
            if answer is None:
                return 404, {"error_code": 40403, "message": f"Schema {parts[2]} not found"}
            return 200, answer
        return 404, {"error_code": 404, "message": "HTTP 404 Not Found"}


def _handler_for(registry: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            registry.requests.append((method, self.path, dict(self.headers.items()), body))
            status, answer = registry.handle(method, self.path, body)
            payload = registry.raw_response or json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (the timeout test)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@dataclass
class Server:
    registry: FakeRegistry
    url: str


@pytest.fixture
def server() -> Iterator[Server]:
    registry = FakeRegistry()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(registry))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Server(registry, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.from_dir(REPO_TOPICS)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the client --------------------------------------------------------------------------


def test_register_posts_the_schema_and_caches_the_id(server: Server) -> None:
    client = SchemaRegistryClient(server.url, timeout_s=2)
    schema = '{"type":"record","name":"A","fields":[]}'

    first = client.register("orders-value", schema)
    second = client.register("orders-value", schema)

    assert first == second == 100
    assert len(server.registry.requests) == 1
    method, path, headers, body = server.registry.requests[0]
    assert (method, path) == ("POST", "/subjects/orders-value/versions")
    assert headers["Content-Type"] == CONTENT_TYPE
    assert json.loads(body) == {"schema": schema}
    assert "Authorization" not in headers
    assert server.registry.subjects == {"orders-value": [100]}


def test_subject_is_url_quoted(server: Server) -> None:
    client = SchemaRegistryClient(server.url + "/", timeout_s=2)
    client.register("team/a events-value", '"string"')
    assert server.registry.requests[0][1] == "/subjects/team%2Fa%20events-value/versions"


def test_schema_by_id_is_fetched_once(server: Server) -> None:
    schema_id = server.registry.add('"string"')
    client = SchemaRegistryClient(server.url, timeout_s=2)

    assert client.schema_by_id(schema_id) == {"schema": '"string"'}
    assert client.schema_by_id(schema_id) == {"schema": '"string"'}
    assert [r[:2] for r in server.registry.requests] == [("GET", f"/schemas/ids/{schema_id}")]


def test_unknown_id_is_a_registry_error_with_status(server: Server) -> None:
    client = SchemaRegistryClient(server.url, timeout_s=2)
    with pytest.raises(RegistryError) as caught:
        client.schema_by_id(99)
    assert caught.value.status == 404
    assert caught.value.error_code == 40403
    assert str(caught.value) == (
        "schema registry GET /schemas/ids/99: HTTP 404 (error 40403): Schema 99 not found"
    )


def test_basic_auth_is_sent_and_never_shown(server: Server) -> None:
    client = SchemaRegistryClient(server.url, username="alice", password="s3cret", timeout_s=2)
    client.register("x-value", '"string"')
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert server.registry.requests[0][2]["Authorization"] == expected

    server.registry.fail_status = 401
    with pytest.raises(RegistryError) as caught:
        client.register("y-value", '"string"')
    assert caught.value.status == 401
    assert "POST /subjects/y-value/versions" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(client)


def test_credentials_in_the_url_become_basic_auth(server: Server) -> None:
    url = server.url.replace("http://", "http://bob:p%40ss@")
    client = SchemaRegistryClient(url, timeout_s=2)
    assert "p%40ss" not in client.base_url
    assert "bob" not in client.base_url
    client.register("x-value", '"string"')
    expected = "Basic " + base64.b64encode(b"bob:p@ss").decode()
    assert server.registry.requests[0][2]["Authorization"] == expected


def test_unreachable_registry(catalog: SchemaCatalog) -> None:
    client = SchemaRegistryClient(f"http://127.0.0.1:{_closed_port()}", timeout_s=2)
    with pytest.raises(RegistryError, match=r"GET /schemas/ids/5: cannot connect") as caught:
        client.schema_by_id(5)
    assert caught.value.status is None


def test_slow_registry_times_out(server: Server) -> None:
    server.registry.delay_s = 1.5
    client = SchemaRegistryClient(server.url, timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(RegistryError, match=r"schema registry GET /schemas/ids/1"):
        client.schema_by_id(1)
    assert time.monotonic() - started < 1.4


def test_non_json_answer(server: Server) -> None:
    server.registry.raw_response = b"<html>proxy error</html>"
    client = SchemaRegistryClient(server.url, timeout_s=2)
    with pytest.raises(RegistryError, match="response is not JSON"):
        client.register("x-value", '"string"')


@pytest.mark.parametrize("url", ["ftp://host", "registry:8081", "http://"])
def test_bad_url_is_refused(url: str) -> None:
    with pytest.raises(RegistryError, match="URL must look like"):
        SchemaRegistryClient(url)


# -- Serde with a registry ------------------------------------------------------------


def _registry_value(schema_id: int, schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(struct.pack(">bI", 0, schema_id))
    schemaless_writer(buffer, parse_schema(schema), record)
    return buffer.getvalue()


def test_encoders_register_under_the_physical_topic(server: Server, catalog: SchemaCatalog) -> None:
    client = SchemaRegistryClient(server.url, timeout_s=2)
    serde = Serde(catalog, registry=client, topic_names={"predictions": "dev.predictions"})

    encoder = serde.prediction_encoder()
    serde.example_encoder()
    serde.alert_encoder()

    assert set(server.registry.subjects) == {
        "dev.predictions-value",
        "examples-value",
        "drift-alerts-value",
    }
    schema_id = server.registry.subjects["dev.predictions-value"][0]
    assert server.registry.schemas[schema_id]["schema"] == catalog.schema_json("prediction")

    prediction = Prediction("e", "m", 3, 1.5, None, 0.5, 1, 2)
    value = encoder.encode(prediction)
    assert value[:5] == struct.pack(">bI", 0, schema_id)
    assert serde.prediction_decoder().decode(value, None) == prediction


def test_json_output_registers_nothing(server: Server, catalog: SchemaCatalog) -> None:
    client = SchemaRegistryClient(server.url, timeout_s=2)
    serde = Serde(catalog, output_format="json", registry=client)
    assert serde.prediction_encoder().encode(Prediction("e", "m", 1, None, None, None, None, 2))
    assert server.registry.requests == []


def test_encoder_creation_fails_fast_without_registry(catalog: SchemaCatalog) -> None:
    client = SchemaRegistryClient(f"http://127.0.0.1:{_closed_port()}", timeout_s=2)
    serde = Serde(catalog, registry=client)
    with pytest.raises(RegistryError, match="POST /subjects/predictions-value/versions"):
        serde.prediction_encoder()


def test_older_writer_schema_is_resolved(server: Server, catalog: SchemaCatalog) -> None:
    old_event = {
        "type": "record",
        "name": "Event",
        "namespace": "streamserve",
        "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "source", "type": "string"},
            {"name": "features", "type": {"type": "map", "values": ["null", "double"]}},
        ],
    }
    schema_id = server.registry.add(json.dumps(old_event))
    value = _registry_value(
        schema_id, old_event, {"event_id": "e-1", "source": "web", "features": {"a": 1.5}}
    )
    serde = Serde(catalog, registry=SchemaRegistryClient(server.url, timeout_s=2))
    decoder = serde.event_decoder()

    assert decoder.decode(value, 77) == Event("e-1", {"a": 1.5}, 77)
    assert decoder.decode(value, 78) == Event("e-1", {"a": 1.5}, 78)
    assert len(server.registry.requests) == 1  # the writer schema is fetched once


def test_identical_writer_schema_reads_directly(server: Server, catalog: SchemaCatalog) -> None:
    schema_id = server.registry.add(catalog.schema_json("event"))
    record = {"event_id": "e", "ts": 5, "features": {"x": "y"}}
    value = _registry_value(schema_id, json.loads(catalog.schema_json("event")), record)
    serde = Serde(catalog, registry=SchemaRegistryClient(server.url, timeout_s=2))
    assert serde.event_decoder().decode(value, None) == Event("e", {"x": "y"}, 5)
    assert serde.event_decoder().decode(b'{"event_id":"e","features":{}}', 3).ts == 3


def test_unknown_registry_id_is_a_decode_error_and_remembered(
    server: Server, catalog: SchemaCatalog
) -> None:
    serde = Serde(catalog, registry=SchemaRegistryClient(server.url, timeout_s=2))
    decoder = serde.event_decoder()
    value = struct.pack(">bI", 0, 4242) + b"\x02a\x00\x00"
    for _ in range(3):
        with pytest.raises(DecodeError, match=r"^unknown schema id 4242$"):
            decoder.decode(value, None)
    assert len(server.registry.requests) == 1


def test_incompatible_writer_schema_is_a_decode_error(
    server: Server, catalog: SchemaCatalog
) -> None:
    label_schema = json.loads(catalog.schema_json("label"))
    schema_id = server.registry.add(catalog.schema_json("label"))
    value = _registry_value(schema_id, label_schema, {"event_id": "e", "label": 1, "ts": None})
    serde = Serde(catalog, registry=SchemaRegistryClient(server.url, timeout_s=2))
    with pytest.raises(DecodeError, match="malformed Avro body"):
        serde.event_decoder().decode(value, None)


def test_non_avro_registry_schema_is_a_decode_error(server: Server, catalog: SchemaCatalog) -> None:
    schema_id = server.registry.add('syntax = "proto3";', schema_type="PROTOBUF")
    serde = Serde(catalog, registry=SchemaRegistryClient(server.url, timeout_s=2))
    with pytest.raises(DecodeError, match=f"schema id {schema_id} is a PROTOBUF schema"):
        serde.event_decoder().decode(struct.pack(">bI", 0, schema_id) + b"\x00", None)


def test_registry_outage_during_decode_is_not_the_records_fault(
    server: Server, catalog: SchemaCatalog
) -> None:
    schema_id = server.registry.add(catalog.schema_json("event"))
    server.registry.fail_status = 503
    serde = Serde(catalog, registry=SchemaRegistryClient(server.url, timeout_s=2))
    with pytest.raises(RegistryError) as caught:
        serde.event_decoder().decode(struct.pack(">bI", 0, schema_id) + b"\x02a\x00\x00", None)
    assert not isinstance(caught.value, DecodeError)
    assert caught.value.status == 503
