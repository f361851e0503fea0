#!/usr/bin/env python3
"""Renders chat templates with Python's Jinja2, as transformers does, to check gentune's renderer.

Usage:
  chat_template_reference.py < REQUEST_JSON
      REQUEST_JSON: {"template": str, "specials": {bos_token, eos_token, ...},
      "cases": [{"messages": [{role, content}], "add_generation_prompt": bool,
      "variables": {...}}]}. Prints a JSON list: the rendered string of each case,
      or {"error": message} where the template raised.

What transformers does (utils/chat_template_utils.py, _compile_jinja_template and
render_jinja_template), restated here without transformers: an
ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks and the
loopcontrols extension; a `tojson` filter that is json.dumps with
ensure_ascii=False; globals raise_exception (raises TemplateError) and
strftime_now; the template rendered with messages, tools=None, documents=None,
add_generation_prompt, the tokenizer's special_tokens_map and the caller's
extra variables. (Its AssistantTracker extension, for {% generation %} blocks,
is left out: no bundled template uses it.)
"""
import json
import sys
from datetime import datetime

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def main():
    request = json.load(sys.stdin)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    template = env.from_string(request["template"])
    out = []
    for case in request["cases"]:
        kwargs = {**case.get("variables", {}), **request["specials"]}
        try:
            out.append(
                template.render(
                    messages=case["messages"],
                    tools=None,
                    documents=None,
                    add_generation_prompt=case["add_generation_prompt"],
                    **kwargs,
                )
            )
        except TemplateError as e:
            out.append({"error": str(e)})
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
