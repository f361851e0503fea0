"""A dynamic Python client of gentune, run by reflection.test.ts.

Usage: reflection_client.py REFLECTION_DESCRIPTOR_SET ADDRESS

Knows nothing of gentune's .proto files: like grpcurl, Postman and grpcui it
asks server reflection for the services, then for the file holding
gentune.v1.ModelService and, by name, every file it imports, builds a fresh
DescriptorPool from those answers alone (DescriptorPool.Add raises on a file
whose imports are missing), makes the message classes from it, and calls
Generate with them. REFLECTION_DESCRIPTOR_SET is grpc/reflection/v1's own
FileDescriptorSet (the test makes it with protoc): the reflection protocol is
the one thing a reflection client must know. Prints one JSON object with what
it observed (the test asserts on it); exits non-zero on any surprise.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
# v1alpha has the same messages on the wire; older clients (Python's own
# grpcio-reflection) still ask it.
REFLECTION_V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def message_class(descriptor):
    """GetMessageClass where this protobuf has it (>= 4.22), else the 4.21 factory (Debian 12)."""
    get = getattr(message_factory, "GetMessageClass", None)
    return get(descriptor) if get else message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


def reflection_classes(path):
    """ServerReflectionRequest / ServerReflectionResponse from grpc/reflection/v1's descriptor set."""
    files = descriptor_pb2.FileDescriptorSet.FromString(open(path, "rb").read())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return tuple(message_class(pool.FindMessageTypeByName(f"grpc.reflection.v1.{n}"))
                 for n in ("ServerReflectionRequest", "ServerReflectionResponse"))


class Reflection:
    """One reflection request per stream, as grpcurl's first calls are."""

    def __init__(self, channel, classes, method=REFLECTION_V1):
        self.request, response = classes
        self.call = channel.stream_stream(method, request_serializer=self.request.SerializeToString,
                                          response_deserializer=response.FromString)

    def ask(self, **kind):
        [answer] = list(self.call(iter([self.request(**kind)]), timeout=10))
        if answer.HasField("error_response"):
            e = answer.error_response
            code = next((c.name for c in grpc.StatusCode if c.value[0] == e.error_code), e.error_code)
            raise LookupError(f"{kind}: {code} {e.error_message}")
        return answer

    def files(self, **kind):
        """FileDescriptorProtos of a file_by_filename / file_containing_symbol answer."""
        answer = self.ask(**kind).file_descriptor_response.file_descriptor_proto
        return [descriptor_pb2.FileDescriptorProto.FromString(b) for b in answer]


def pool_from_reflection(reflection, symbol):
    """A DescriptorPool holding `symbol`'s file and everything it imports, all from reflection."""
    known = {f.name: f for f in reflection.files(file_containing_symbol=symbol)}
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name):
        if name in added:
            return
        if name not in known:  # grpcurl asks for an import the answer lacked by name
            for f in reflection.files(file_by_filename=name):
                known.setdefault(f.name, f)
        for dependency in known[name].dependency:
            add(dependency)
        pool.Add(known[name])
        added.add(name)

    for name in list(known):
        add(name)
    return pool, known


def main(reflection_set, address):
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=10)
    classes = reflection_classes(reflection_set)
    reflection = Reflection(channel, classes)

    services = [s.name for s in reflection.ask(list_services="*").list_services_response.service]
    pool, files = pool_from_reflection(reflection, "gentune.v1.ModelService")
    by_name = [f.name for f in reflection.files(file_by_filename="gentune/v1/generate.proto")]
    by_name_v1alpha = [f.name for f in Reflection(channel, classes, REFLECTION_V1ALPHA).files(
        file_by_filename="gentune/v1/generate.proto")]
    health_pool, _ = pool_from_reflection(reflection, "grpc.health.v1.Health")

    service = pool.FindServiceByName("gentune.v1.ModelService")
    method = service.methods_by_name["Generate"]
    request_class, response_class = message_class(method.input_type), message_class(method.output_type)
    request = request_class(prompt="Hello from reflection")
    request.sampling.max_new_tokens = 4
    request.sampling.temperature = 0.0
    request.sampling.seed = 7
    generate = channel.unary_stream(f"/{service.full_name}/{method.name}",
                                    request_serializer=request_class.SerializeToString,
                                    response_deserializer=response_class.FromString)
    replies = list(generate(request, timeout=30))
    finish = method.output_type.fields_by_name["finish_reason"].enum_type

    health = health_pool.FindServiceByName("grpc.health.v1.Health").methods_by_name["Check"]
    check_class, status_class = message_class(health.input_type), message_class(health.output_type)
    status = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=check_class.SerializeToString,
                                 response_deserializer=status_class.FromString)(check_class(service="gentune.v1.ModelService"), timeout=5)

    print(json.dumps({
        "services": services,
        "dependencies": {name: list(f.dependency) for name, f in sorted(files.items())},
        "file_by_filename": by_name,
        "file_by_filename_v1alpha": by_name_v1alpha,
        "generate": {
            "request_type": method.input_type.full_name,
            "tokens": sum(len(r.token_ids) for r in replies),
            "text": "".join(r.text for r in replies),
            "generated_tokens": replies[-1].usage.generated_tokens,
            "finish_reason": finish.values_by_number[replies[-1].finish_reason].name,
        },
        "health": health.output_type.fields_by_name["status"].enum_type.values_by_number[status.status].name,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
