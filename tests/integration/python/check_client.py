"""A Python gRPC client of gentune, run by python-client.test.ts.

Usage: PYTHONPATH=clients/python check_client.py ADDRESS

Uses the committed client under clients/python/, as a user would. Walks what a Python user would do: check health, stream a generation, run a
small fine-tune to the end reading its progress, evaluate the base model
against the new adapter, and generate with it. Prints one JSON object with
what it observed (the test asserts on it); exits non-zero on any surprise.
"""
import json
import sys

import grpc

from gentune.v1 import (
    adapters_pb2,
    datasets_pb2,
    evaluate_pb2,
    fine_tune_pb2,
    generate_pb2,
    server_info_pb2,
    service_pb2_grpc,
)
from health.v1 import health_pb2, health_pb2_grpc

EXAMPLES = [
    datasets_pb2.Example(prompt="Q: cat? A:", completion=" meow"),
    datasets_pb2.Example(prompt="Q: dog? A:", completion=" woof"),
    datasets_pb2.Example(prompt="Q: cow? A:", completion=" moo"),
]
ADAPTER = "py-adapter"
STEPS = 12


def generate(stub, request):
    """Streams one generation; returns (text, token count, last message)."""
    messages = list(stub.Generate(request, timeout=30))
    text = "".join(m.text for m in messages)
    return text, sum(len(m.token_ids) for m in messages), messages[-1]


def fine_tune(stub):
    """Runs a fine-tune, reading every event until the terminal one."""
    request = fine_tune_pb2.FineTuneRequest(
        adapter=ADAPTER,
        examples=EXAMPLES,
        lora=fine_tune_pb2.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["c_attn", "c_fc"]),
        hyperparameters=fine_tune_pb2.Hyperparameters(
            max_steps=STEPS,
            batch_size=3,
            learning_rate=2e-2,
            lr_scheduler=fine_tune_pb2.LR_SCHEDULER_CONSTANT,
            seed=1,
        ),
    )
    kinds, steps, losses, succeeded = [], [], [], None
    for event in stub.FineTune(request, timeout=120):
        kind = event.WhichOneof("event")
        kinds.append(kind)
        if kind == "progress":
            steps.append(event.progress.step)
            losses.append(event.progress.loss)
        elif kind == "succeeded":
            succeeded = {"adapter": event.succeeded.adapter, "version": event.succeeded.version}
        elif kind in ("failed", "cancelled"):
            raise SystemExit(f"fine-tune ended with {kind}: {event}")
    job_id = event.job_id
    job = stub.GetFineTuneJob(fine_tune_pb2.GetFineTuneJobRequest(job_id=job_id), timeout=5).job
    return {
        "kinds": kinds,
        "steps": steps,
        "losses": losses,
        "succeeded": succeeded,
        "job_state": fine_tune_pb2.JobState.Name(job.state),
    }


def main(address: str) -> None:
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=10)

    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="gentune.v1.ModelService"), timeout=5).status

    stub = service_pb2_grpc.ModelServiceStub(channel)
    info = stub.GetServerInfo(server_info_pb2.GetServerInfoRequest(), timeout=5)

    text, tokens, last = generate(stub, generate_pb2.GenerateRequest(
        prompt="Hello from Python",
        sampling=generate_pb2.SamplingParams(max_new_tokens=4, temperature=0.0, seed=7),
    ))

    try:
        bad = generate_pb2.GenerateRequest(prompt="x", sampling=generate_pb2.SamplingParams(temperature=-1))
        list(stub.Generate(bad, timeout=5))
        error = None
    except grpc.RpcError as e:  # the expected path
        error = {"code": e.code().name, "details": e.details()}

    trained = fine_tune(stub)

    evaluation = stub.Evaluate(evaluate_pb2.EvaluateRequest(
        examples=EXAMPLES,
        adapters=[ADAPTER],
        include_base_model=True,
        metrics=[evaluate_pb2.METRIC_LOSS, evaluate_pb2.METRIC_PERPLEXITY],
    ), timeout=60)

    _, adapter_tokens, adapter_last = generate(stub, generate_pb2.GenerateRequest(
        prompt="Q: cat? A:",
        adapter=ADAPTER,
        sampling=generate_pb2.SamplingParams(max_new_tokens=5, temperature=0.0),
    ))
    listed = stub.ListAdapters(adapters_pb2.ListAdaptersRequest(), timeout=5)

    print(json.dumps({
        "health": health_pb2.HealthCheckResponse.ServingStatus.Name(status),
        "model": info.model.name,
        "text": text,
        "tokens": tokens,
        "finish_reason": generate_pb2.FinishReason.Name(last.finish_reason),
        "generated_tokens": last.usage.generated_tokens,
        "error": error,
        "fine_tune": trained,
        "evaluation": [
            {"adapter": r.adapter, "loss": r.metrics.loss, "perplexity": r.metrics.perplexity}
            for r in evaluation.results
        ],
        "adapter_generation": {
            "adapter": adapter_last.adapter,
            "tokens": adapter_tokens,
            "finish_reason": generate_pb2.FinishReason.Name(adapter_last.finish_reason),
        },
        "adapters": [a.name for a in listed.adapters],
    }))


if __name__ == "__main__":
    main(sys.argv[1])
