"""The one place that creates Logger, Tracer and Metrics for every function."""
from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.tracing import Tracer

logger = Logger()
# Patch only botocore (every DynamoDB and EventBridge call becomes a subsegment): the
# default patches every library X-Ray knows, which imports boto3 and more at cold start.
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics()
