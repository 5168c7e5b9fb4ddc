"""One cold start, in a fresh interpreter: `python -c <this file's text> TARGET [EVENT]`.

TARGET "boto3" is the baseline: `import boto3`, then `boto3.client("dynamodb")` and one
GetItem of BASELINE_KEY (JSON, env). Otherwise TARGET is a handler ("package.module.attr"):
import its module, then invoke it once with the JSON event in the file EVENT, as Lambda
would at a cold start. Without EVENT (either target), it stops after the import. Prints
one line: `@@cold <import ms> <first call ms> <outcome>`.

Standard library only, and nothing imported before the clock starts that Lambda's own
bootstrap would not have imported either: this text runs with the artifact's sys.path.
"""
import sys
import time

_target = sys.argv[1]
_started = time.perf_counter()
if _target == "boto3":
    import boto3

    _imported = time.perf_counter()
    if len(sys.argv) < 3:  # import only (instruction counts)
        print(f"@@cold {(_imported - _started) * 1e3:.3f} 0 ok", flush=True)
        sys.exit(0)
    import json
    import os

    _key = json.loads(os.environ["BASELINE_KEY"])
    _ready = time.perf_counter()
    boto3.client("dynamodb").get_item(TableName=os.environ["TABLE_NAME"], Key=_key)
    _outcome = "ok"
else:
    import importlib

    _module, _, _attribute = _target.rpartition(".")
    _handler = getattr(importlib.import_module(_module), _attribute)
    _imported = time.perf_counter()
    if len(sys.argv) < 3:  # import only (instruction counts)
        print(f"@@cold {(_imported - _started) * 1e3:.3f} 0 ok", flush=True)
        sys.exit(0)
    import json
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
    _ready = time.perf_counter()
    _result = _handler(_event, _Context())
    _status = _result.get("statusCode") if isinstance(_result, dict) else None
    _failures = _result.get("batchItemFailures") if isinstance(_result, dict) else None
    if _status is not None and _status >= 400:
        _outcome = f"HTTP-{_status}"
    elif _failures:
        _outcome = f"{len(_failures)}-failed-items"
    else:
        _outcome = "ok"
_done = time.perf_counter()
print(f"@@cold {(_imported - _started) * 1e3:.3f} {(_done - _ready) * 1e3:.3f} {_outcome}",
      flush=True)
