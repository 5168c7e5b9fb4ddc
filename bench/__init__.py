"""`make bench`: the design brief's targets, measured as ratios in one run.

    python -m bench            # writes bench/report.md and prints it
    python -m bench --strict   # exit 1 when a target is missed, not only on errors

Sections:
- cold starts of every function in template.yaml, import and import + first invocation,
  ÷ `import boto3` (+ client + GetItem), from source and from the built artifact; the
  package sizes and bytecode of `sam build` (bench.coldstart);
- DynamoDB calls and consumed capacity per operation, through the real handlers against
  DynamoDB Local (bench.operations; add an operation with one decorated function).
"""
