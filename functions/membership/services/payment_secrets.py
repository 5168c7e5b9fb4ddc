"""Payment providers' keys and certificates, from AWS Secrets Manager via Powertools Parameters.

Each provider has one secret, a JSON object (docs/payments.md), named by a template
parameter (`WechatPaySecretName`, `AlipaySecretName`); the function's role may read those
secrets and nothing else. A secret is kept for `PAYMENT_SECRET_CACHE_SECONDS`, so a
rotation reaches every container within that time without a read per request.
Powertools Parameters (and with it boto3) is imported on first use: only functions that
verify payments ever get here. Its client is the process's (membership.aws).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from membership.config import get_settings
from membership.domain.topups import PaymentProviderNotConfigured
from membership.errors import Unavailable
from membership.observability import logger

Config = TypeVar("Config", bound=BaseModel)

_lock = threading.Lock()
_provider = None
# secret name -> (the secret's JSON, what was built from it)
_built: dict[str, tuple[dict, Any]] = {}


def _secrets_provider():
    global _provider
    if _provider is None:
        with _lock:
            if _provider is None:
                from aws_lambda_powertools.utilities.parameters import SecretsProvider

                from membership import aws

                # The process's own client (membership.aws), not a second botocore session.
                _provider = SecretsProvider(boto3_client=aws.client("secretsmanager"))
    return _provider


def read_secret(name: str) -> dict:
    """The secret's JSON object, from the cache while it is fresh."""
    from aws_lambda_powertools.utilities.parameters.exceptions import (
        GetParameterError,
        TransformParameterError,
    )

    try:
        value = _secrets_provider().get(
            name, transform="json", max_age=get_settings().payment_secret_cache_seconds)
    except TransformParameterError:
        logger.error("payment provider secret is not a JSON object", extra={"secret": name})
        raise Unavailable("the payment provider's configuration is unreadable") from None
    except GetParameterError as exc:
        logger.error("payment provider secret could not be read",
                     extra={"secret": name, "error": str(exc)})
        raise Unavailable("the payment provider's configuration could not be read") from None
    if not isinstance(value, dict):
        logger.error("payment provider secret is not a JSON object", extra={"secret": name})
        raise Unavailable("the payment provider's configuration is unreadable")
    return value


def configured(secret_name: str, provider: str) -> str:
    if not secret_name:
        raise PaymentProviderNotConfigured(
            f"{provider} is not configured for this deployment", provider=provider)
    return secret_name


def client_for(secret_name: str, model: type[Config], build: Callable[[Config], Any]) -> Any:
    """What `build` makes from the secret (an SDK client), made again only when the secret
    changed: keys are parsed once per container and rotation still takes effect."""
    raw = read_secret(secret_name)
    known = _built.get(secret_name)
    if known is not None and known[0] == raw:
        return known[1]
    try:
        config = model.model_validate(raw)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        logger.error("payment provider secret lacks fields", extra={"secret": secret_name,
                                                                    "fields": fields})
        raise Unavailable("the payment provider's configuration is incomplete") from None
    try:
        made = build(config)
    except Exception as exc:  # noqa: BLE001 - an SDK refusing a key says so with Exception
        logger.error("payment provider keys could not be loaded",
                     extra={"secret": secret_name, "error": f"{type(exc).__name__}: {exc}"})
        raise Unavailable("the payment provider's keys could not be loaded") from None
    _built[secret_name] = (raw, made)
    return made


def reset() -> None:
    """Forget the provider and everything built (tests switch mocks; Lambda never needs it)."""
    global _provider
    with _lock:
        _provider = None
        _built.clear()
