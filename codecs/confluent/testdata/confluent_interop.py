"""Reads a record framed by codecs/confluent with Confluent's Python
ProtobufDeserializer, for TestConfluentPythonInterop.
Needs: pip install 'confluent-kafka[protobuf]'.

argv: FileDescriptorSet file (activity.proto and its imports), hex of the
framed record. Prints JSON: the fields read.

Only reading: Confluent's Python ProtobufSerializer cannot write through
Apicurio Registry 3.3.3's ccompat API. With use.latest.version it fetches the
schema with ?format=serialized and expects base64 of a FileDescriptorProto,
which Apicurio returns as raw bytes; without it, it looks up its own
base64-serialized schema, which Apicurio does not match to the registered
.proto text (404).
"""
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

fds_path, framed_hex = sys.argv[1:3]
fds = descriptor_pb2.FileDescriptorSet()
with open(fds_path, "rb") as f:
    fds.ParseFromString(f.read())
pool = descriptor_pool.DescriptorPool()
for fd in fds.file:
    pool.Add(fd)
Event = message_factory.GetMessageClass(pool.FindMessageTypeByName("inarious.activity.BackendApiActivity"))
ctx = SerializationContext("Users", MessageField.VALUE)

read = ProtobufDeserializer(Event, {"use.deprecated.format": False})(bytes.fromhex(framed_hex), ctx)
print(json.dumps({
    "client_host": read.client_host,
    "route": read.route,
    "http_status": read.http_status,
    "request_time_seconds": read.request_time.seconds,
}))
