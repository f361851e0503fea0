"""Calls GetServerInfo with the given `authorization` values, each its own
metadata entry (grpcio sends repeated keys as they are; grpc-js will not),
and prints the status as JSON: {"code": "UNAUTHENTICATED", "details": "..."}.

    python3 repeated_authorization.py HOST:PORT VALUE [VALUE ...]
"""
import json
import sys

import grpc

channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_unary('/gentune.v1.ModelService/GetServerInfo', request_serializer=lambda b: b, response_deserializer=lambda b: b)
try:
    call(b'', metadata=tuple(('authorization', v) for v in sys.argv[2:]), timeout=30)
    print(json.dumps({'code': 'OK', 'details': ''}))
except grpc.RpcError as e:
    print(json.dumps({'code': e.code().name, 'details': e.details()}))
