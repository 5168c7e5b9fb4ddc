"""HTTP: the payment providers' signed notifications (no JWT: the signature authenticates).

    POST /v1/payments/wechatpay/notifications   WeChat Pay API v3 (JSON, encrypted resource)
    POST /v1/payments/alipay/notifications      Alipay (form fields, RSA2 signature)

Each answers its provider's acknowledgement once the notification is applied (or was
applied before): WeChat Pay 200 {"code": "SUCCESS"}, Alipay the text `success`. Anything
else is an error with a stable code; the provider sends the notification again later, and
nothing was written. See docs/payments.md.
"""
from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit

from membership.handlers.http import JSON, build_app, error_responses, json_response
from membership.observability import logger, metrics, tracer
from membership.services import payment_notifications

ALIPAY_PATH = "/v1/payments/alipay/notifications"
# Alipay posts its fields form-encoded; every other body of the API is JSON.
app = build_app(form_paths=(ALIPAY_PATH,))

WECHATPAY_ACK = {"code": "SUCCESS", "message": "OK"}
ALIPAY_ACK = "success"
# The OpenAPI document marks these as needing no bearer token (handlers/openapi.py).
UNAUTHENTICATED_ROUTES = (("post", "/v1/payments/wechatpay/notifications"),
                          ("post", "/v1/payments/alipay/notifications"))
TAGS = ["payment notifications"]


def _body() -> str:
    return app.current_event.decoded_body or ""


def _refusals_logged(route):
    """A refused notification is logged and counted: the provider retries it for a day,
    and then a person must look (docs/payments.md)."""
    import functools

    from membership.errors import DomainError

    @functools.wraps(route)
    def wrapper(*args, **kwargs):
        try:
            return route(*args, **kwargs)
        except DomainError as exc:
            logger.warning("payment notification refused",
                           extra={"route": route.__name__, "code": exc.code,
                                  "reason": exc.message, "details": exc.details})
            metrics.add_metric(name="PaymentNotificationsRefused", unit=MetricUnit.Count,
                               value=1)
            raise

    return wrapper


def _record(provider: str, outcome: payment_notifications.Applied) -> None:
    logger.info("payment notification applied", extra={"provider": provider,
                                                        "action": outcome.action})
    metrics.add_metric(name=f"PaymentNotifications_{outcome.action}", unit=MetricUnit.Count,
                       value=1)


@app.post(
    "/v1/payments/wechatpay/notifications",
    summary="WeChat Pay's payment and refund notifications (signed; no JWT)",
    description="Called by WeChat Pay only. The Wechatpay-Signature over the body is checked "
                "with the WeChat Pay public key, Wechatpay-Timestamp must be within the "
                "window, the resource is decrypted with the APIv3 key (AEAD_AES_256_GCM). "
                "TRANSACTION.SUCCESS credits the top-up or buys the plan term named by the "
                "attach, once; REFUND.SUCCESS refunds a top-up (a plan payment's refund is "
                "acknowledged and changes nothing). 200 {\"code\": \"SUCCESS\"} "
                "acknowledges.",
    responses={200: {"description": "Acknowledged: applied now or before",
                     "content": {JSON: {"schema": {"type": "object"}}}},
               **error_responses(400, 401, 404, 409, 422, 503)},
    tags=TAGS,
)
@_refusals_logged
def wechatpay_notification():
    from membership.services import wechatpay

    notification = wechatpay.read_notification(dict(app.current_event.headers or {}), _body())
    logger.append_keys(eventType=notification.event_type)
    if notification.payment is not None:
        outcome = payment_notifications.apply_payment(notification.payment,
                                                      wechatpay.client().config.merchant)
    elif notification.refund is not None:
        outcome = payment_notifications.apply_refund(notification.refund)
    else:
        outcome = payment_notifications.Applied("ignored", {})
    _record("wechat_pay", outcome)
    return json_response(200, WECHATPAY_ACK)


@app.post(
    "/v1/payments/alipay/notifications",
    summary="Alipay's asynchronous payment and refund notifications (signed; no JWT)",
    description="Called by Alipay only, as application/x-www-form-urlencoded fields. The "
                "RSA2 sign over every other field is checked with Alipay's public key, "
                "notify_time must be within the window, app_id (and seller_id) must be this "
                "merchant's. TRADE_SUCCESS / TRADE_FINISHED credit the top-up or buy the "
                "plan term named by passback_params, once; refund_fee with out_biz_no "
                "refunds a top-up (a plan payment's refund is acknowledged and changes "
                "nothing). The text `success` acknowledges.",
    responses={200: {"description": "Acknowledged: applied now or before",
                     "content": {"text/plain": {"schema": {"type": "string",
                                                           "enum": [ALIPAY_ACK]}}}},
               **error_responses(400, 401, 404, 409, 422, 503)},
    tags=TAGS,
)
@_refusals_logged
def alipay_notification():
    from membership.services import alipay

    notification = alipay.read_notification(_body())
    logger.append_keys(tradeStatus=notification.trade_status)
    if notification.refund is not None:
        outcome = payment_notifications.apply_refund(notification.refund)
    else:
        outcome = payment_notifications.apply_payment(notification.payment,
                                                      alipay.client().config.merchant)
    _record("alipay", outcome)
    return Response(status_code=200, content_type="text/plain", body=ALIPAY_ACK)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
