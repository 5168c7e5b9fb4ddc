"""The one place that creates Logger, Tracer and Metrics for every function.

Tracing: Lambda's active tracing always records each invocation. Powertools' Tracer adds
subsegments per handler and per AWS call, but the X-Ray SDK it needs builds two botocore
clients when it is imported, about as long as importing boto3. So detailed tracing is an
operator's switch (`DETAILED_TRACING=true`, template parameter `DetailedTracing`); off,
the Tracer keeps its decorators and sends nothing, without loading the SDK.
"""
from __future__ import annotations

import re
from contextlib import asynccontextmanager, contextmanager

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.tracing import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from membership.config import get_settings


class _SilentSegment(BaseSegment):
    def close(self, end_time=None):
        pass

    def add_subsegment(self, subsegment):
        pass

    def remove_subsegment(self, subsegment):
        pass

    def put_annotation(self, key, value):
        pass

    def put_metadata(self, key, value, namespace="default"):
        pass

    def add_exception(self, exception, stack, remote=False):
        pass


class _SilentProvider(BaseProvider):
    """A tracing provider that records nothing and imports nothing."""

    @contextmanager
    def in_subsegment(self, name=None, **kwargs):
        yield _SilentSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, name=None, **kwargs):
        yield _SilentSegment()

    def put_annotation(self, key, value):
        pass

    def put_metadata(self, key, value, namespace="default"):
        pass

    def patch(self, modules):
        pass

    def patch_all(self):
        pass


# A full phone number never reaches a log line (docs/privacy.md): an E.164 number, or a
# mainland mobile number of 11 digits, wherever it sits in the line (a message, an extra
# key, an event logged by POWERTOOLS_LOGGER_LOG_EVENT), keeps its first and last digits.
_PHONES = re.compile(r"(?<![\d+])(\+?\d{1,3}[ -]?)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)"
                     r"|(?<![\d+])(\+\d{3})(\d{2,10})(\d{4})(?!\d)")


def _mask(match: re.Match) -> str:
    if match.group(2):
        return f"{match.group(1) or ''}{match.group(2)}****{match.group(4)}"
    return f"{match.group(5)}{'*' * len(match.group(6))}{match.group(7)}"


def mask_phones(text: str) -> str:
    return _PHONES.sub(_mask, text)


class PhoneMaskingFormatter(LambdaPowertoolsFormatter):
    def format(self, record):
        return mask_phones(super().format(record))


logger = Logger(logger_formatter=PhoneMaskingFormatter())
metrics = Metrics()
if get_settings().detailed_tracing:
    # botocore only: the default patch list imports boto3 and more at cold start.
    tracer = Tracer(patch_modules=("botocore",))
else:
    # Not `disabled=True`: a disabled Tracer imports the X-Ray SDK to switch it off. The
    # silent provider records nothing, so the decorators cost a few no-op calls.
    tracer = Tracer(disabled=False, auto_patch=False, provider=_SilentProvider())
