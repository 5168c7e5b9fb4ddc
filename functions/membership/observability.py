"""The one place that creates Logger, Tracer and Metrics for every function."""
from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.tracing import Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
