"""One cold start, in a fresh interpreter: `python -c <this file's text> TARGET [EVENT]`.

TARGET is a handler ("package.module.attr"): import its module, then invoke it once with
the JSON event in the file EVENT, as Lambda does at a cold start. Or a reference point,
whose first call is `create_client("dynamodb")` and one GetItem of BASELINE_KEY (JSON,
env) from TABLE_NAME:

- "boto3": `import boto3`, then `boto3.client("dynamodb")` (the baseline);
- "libraries": pynamodb and pydantic with one model, the least any function imports,
  then a botocore client;
- "powertools": those, then Powertools' Logger, Metrics and Tracer as the functions set
  them up (observability.py), and an HTTP resolver with request validation.

Without EVENT it stops after the import. Prints one line: `@@cold <import ms> <first call
ms> <import CPU ms> <first call CPU ms> <outcome>` (wall clock, then the process's CPU time).

Standard library only before the clock starts: this text runs on the artifact's sys.path.
"""
import sys
import time

_target = sys.argv[1]
_clock, _cpu = time.perf_counter, time.process_time
_started, _started_cpu = _clock(), _cpu()
if _target == "boto3":
    import boto3

    _make_client = boto3.client
elif _target in ("libraries", "powertools"):
    import botocore.session
    import pynamodb.models  # noqa: F401
    from pydantic import BaseModel

    class _Model(BaseModel):
        value: int

    if _target == "powertools":
        from membership import lean_imports

        lean_imports.install()
        from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

        import membership.observability  # noqa: F401 - Logger, Metrics, Tracer

        APIGatewayHttpResolver(enable_validation=True)
    _make_client = botocore.session.get_session().create_client
else:
    import importlib

    _module, _, _attribute = _target.rpartition(".")
    _handler = getattr(importlib.import_module(_module), _attribute)
_imported, _imported_cpu = _clock(), _cpu()
if len(sys.argv) < 3:  # import only (instruction counts)
    print(f"@@cold {(_imported - _started) * 1e3:.3f} 0 "
          f"{(_imported_cpu - _started_cpu) * 1e3:.3f} 0 ok", flush=True)
    sys.exit(0)

import json  # noqa: E402 - after the clock: every target has imported it by now
import os  # noqa: E402

if _target in ("boto3", "libraries", "powertools"):
    _key = json.loads(os.environ["BASELINE_KEY"])
    _ready, _ready_cpu = _clock(), _cpu()
    _make_client("dynamodb").get_item(TableName=os.environ["TABLE_NAME"], Key=_key)
    _outcome = "ok"
else:
    import uuid

    class _Context:
        function_name = "cold"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cold"
        memory_limit_in_mb = 512
        aws_request_id = str(uuid.uuid4())
        log_group_name = "/aws/lambda/cold"
        log_stream_name = "cold"

        @staticmethod
        def get_remaining_time_in_millis():
            return 300_000

    with open(sys.argv[2], encoding="utf-8") as _f:
        _event = json.load(_f)
    _ready, _ready_cpu = _clock(), _cpu()
    _result = _handler(_event, _Context())
    _status = _result.get("statusCode") if isinstance(_result, dict) else None
    _failures = _result.get("batchItemFailures") if isinstance(_result, dict) else None
    if _status is not None and _status >= 400:
        _outcome = f"HTTP-{_status}"
    elif _failures:
        _outcome = f"{len(_failures)}-failed-items"
    else:
        _outcome = "ok"
_done, _done_cpu = _clock(), _cpu()
print(f"@@cold {(_imported - _started) * 1e3:.3f} {(_done - _ready) * 1e3:.3f} "
      f"{(_imported_cpu - _started_cpu) * 1e3:.3f} {(_done_cpu - _ready_cpu) * 1e3:.3f} "
      f"{_outcome}", flush=True)
