"""`make bench`: the design brief's targets, measured as ratios in one run.

    python -m bench            # writes bench/report.md and prints it
    python -m bench --strict   # exit 1 when a target is missed, not only on errors

Sections:
- import time of every handler in template.yaml ÷ `import boto3` (bench.importtime);
- DynamoDB calls and consumed capacity per operation, through the real handlers against
  DynamoDB Local (bench.operations; add an operation with one decorated function).
"""
