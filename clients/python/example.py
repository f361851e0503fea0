"""Streams one generation from gentune, after checking the server is SERVING.

    PYTHONPATH=clients/python python3 clients/python/example.py [ADDRESS] [PROMPT]

ADDRESS defaults to 127.0.0.1:50051. Needs only python3-grpcio and
python3-protobuf (clients/python/README.md).
"""
import sys

import grpc

from gentune.v1 import generate_pb2, service_pb2_grpc
from health.v1 import health_pb2, health_pb2_grpc


def main(address: str, prompt: str) -> None:
    channel = grpc.insecure_channel(address)
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="gentune.v1.ModelService"), timeout=10)
    if health.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(f"gentune at {address} is {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}")

    stub = service_pb2_grpc.ModelServiceStub(channel)
    request = generate_pb2.GenerateRequest(
        prompt=prompt, sampling=generate_pb2.SamplingParams(max_new_tokens=40, temperature=0.8))
    for chunk in stub.Generate(request, timeout=60):
        print(chunk.text, end="", flush=True)
        if chunk.finish_reason:  # the last message: why it ended, and the token counts
            print(f"\n[{generate_pb2.FinishReason.Name(chunk.finish_reason)}, "
                  f"{chunk.usage.generated_tokens} tokens]")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051",
         sys.argv[2] if len(sys.argv) > 2 else "Call me Ishmael.")
