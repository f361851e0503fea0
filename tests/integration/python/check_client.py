"""A Python gRPC client of gentune, run by python-client.test.ts.

Usage: check_client.py GEN_DIR ADDRESS

GEN_DIR holds stubs generated from proto/ (and grpc.health.v1) at test time.
Prints one JSON object with what it observed; exits non-zero on any surprise.
"""
import json
import sys

import grpc

sys.path.insert(0, sys.argv[1])

from gentune.v1 import generate_pb2, server_info_pb2, service_pb2_grpc  # noqa: E402
from health.v1 import health_pb2, health_pb2_grpc  # noqa: E402


def main(address: str) -> None:
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=10)

    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="gentune.v1.ModelService"), timeout=5).status

    stub = service_pb2_grpc.ModelServiceStub(channel)
    info = stub.GetServerInfo(server_info_pb2.GetServerInfoRequest(), timeout=5)

    request = generate_pb2.GenerateRequest(
        prompt="Hello from Python",
        sampling=generate_pb2.SamplingParams(max_new_tokens=4, temperature=0.0, seed=7),
    )
    messages = list(stub.Generate(request, timeout=10))
    last = messages[-1]

    try:
        bad = generate_pb2.GenerateRequest(prompt="x", sampling=generate_pb2.SamplingParams(temperature=-1))
        list(stub.Generate(bad, timeout=5))
        error = None
    except grpc.RpcError as e:  # the expected path
        error = {"code": e.code().name, "details": e.details()}

    print(json.dumps({
        "health": health_pb2.HealthCheckResponse.ServingStatus.Name(status),
        "model": info.model.name,
        "text": "".join(m.text for m in messages),
        "tokens": sum(len(m.token_ids) for m in messages),
        "finish_reason": generate_pb2.FinishReason.Name(last.finish_reason),
        "generated_tokens": last.usage.generated_tokens,
        "error": error,
    }))


if __name__ == "__main__":
    main(sys.argv[2])
