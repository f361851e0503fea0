"""Prints messages in proto3's canonical JSON as Python's protobuf prints it, for cli-json.test.ts.

Usage: canonical_json.py GEN_DIR < lines

GEN_DIR holds the stubs generated from proto/ at test time. Each input line is
"FULL_TYPE_NAME<TAB>JSON" (a line the gentune CLI printed with --json); each
output line is that message parsed by google.protobuf.json_format (strict:
unknown or mistyped fields are errors) and printed back by MessageToJson with
fields without presence included at their defaults. Exits non-zero on any
line it cannot parse, naming it.
"""
import inspect
import sys

sys.path.insert(0, sys.argv[1])

from google.protobuf import json_format, symbol_database  # noqa: E402
from gentune.v1 import (  # noqa: E402,F401
    adapters_pb2,
    datasets_pb2,
    evaluate_pb2,
    fine_tune_pb2,
    generate_pb2,
    server_info_pb2,
)

# protobuf >= 5.26 renamed the option; Debian's 4.21 has the old name.
_PARAMS = inspect.signature(json_format.MessageToJson).parameters
DEFAULTS = (
    {"always_print_fields_with_no_presence": True}
    if "always_print_fields_with_no_presence" in _PARAMS
    else {"including_default_value_fields": True}
)

for number, line in enumerate(sys.stdin, 1):
    type_name, text = line.rstrip("\n").split("\t", 1)
    message = symbol_database.Default().GetSymbol(type_name)()
    try:
        json_format.Parse(text, message)
    except json_format.ParseError as e:
        raise SystemExit(f"line {number} ({type_name}): {e}: {text}")
    print(json_format.MessageToJson(message, indent=None, **DEFAULTS))
