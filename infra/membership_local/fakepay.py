"""Fake WeChat Pay and Alipay for the local stack and the tests, on loopback.

Each fake holds generated keys and signs as its provider does, so the real verifiers and
notification handlers (and the providers' SDKs inside them) run unchanged against it:

- WeChat Pay API v3: `GET /wechatpay/v3/pay/transactions/out-trade-no/{no}?mchid=` checks
  the merchant's `Authorization` signature and answers a response signed with the
  platform key; a notification is the resource encrypted with the APIv3 key
  (AEAD_AES_256_GCM) in a JSON envelope, signed over timestamp, nonce and body.
- Alipay: `GET /alipay/gateway.do?method=alipay.trade.query&...` checks the app's RSA2
  signature and answers a signed `alipay_trade_query_response`; a notification is form
  fields signed (RSA2) over every field but sign and sign_type.

Control endpoints (`/_fake/...`) record payments and refunds and send their notifications
to the API: `membership-local pay` drives them. The secrets the merchant would store are
what `secrets()` returns; the local stack puts them in its local Secrets Manager.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import secrets as pysecrets
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .cli import command

WECHATPAY_PREFIX = "/wechatpay"
ALIPAY_GATEWAY = "/alipay/gateway.do"
WECHATPAY_NOTIFY_PATH = "/v1/payments/wechatpay/notifications"
ALIPAY_NOTIFY_PATH = "/v1/payments/alipay/notifications"
WECHATPAY_SECRET = "membership-local/wechatpay"
ALIPAY_SECRET = "membership-local/alipay"
BEIJING = timezone(timedelta(hours=8))
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"


# ---- keys and signatures, as the providers make them ----------------------------------

def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rsa_sign(key: rsa.RSAPrivateKey, message: str) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: both providers' signature."""
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(),
                                      hashes.SHA256())).decode()


def rsa_verify(public_key, message: str, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature), message.encode(), padding.PKCS1v15(),
                          hashes.SHA256())
        return True
    except Exception:  # noqa: BLE001 - any failure is "not signed by this key"
        return False


@dataclass
class WechatPayKeys:
    """A merchant and its WeChat Pay platform, with fresh keys."""

    mchid: str = "1900000109"
    appid: str = "wxd678efh567hg6787"
    api_v3_key: str = field(default_factory=lambda: pysecrets.token_hex(16))
    merchant_key: rsa.RSAPrivateKey = field(default_factory=_new_key)
    merchant_serial: str = field(default_factory=lambda: uuid.uuid4().hex.upper())
    platform_key: rsa.RSAPrivateKey = field(default_factory=_new_key)
    platform_key_id: str = field(
        default_factory=lambda: "PUB_KEY_ID_" + uuid.uuid4().hex.upper())

    def secret(self) -> dict:
        """What the merchant stores in its Secrets Manager secret (docs/payments.md)."""
        return {"mchid": self.mchid, "appid": self.appid, "apiV3Key": self.api_v3_key,
                "merchantPrivateKey": private_pem(self.merchant_key),
                "merchantCertSerialNo": self.merchant_serial,
                "platformPublicKey": public_pem(self.platform_key),
                "platformPublicKeyId": self.platform_key_id}

    def signed_headers(self, body: str, *, timestamp: int | None = None,
                       nonce: str | None = None) -> dict[str, str]:
        timestamp = int(time.time()) if timestamp is None else timestamp
        nonce = nonce or uuid.uuid4().hex
        return {
            "Wechatpay-Timestamp": str(timestamp), "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": self.platform_key_id, "Wechatpay-Signature-Type": SIGNATURE_TYPE,
            "Wechatpay-Signature": rsa_sign(self.platform_key, f"{timestamp}\n{nonce}\n{body}\n"),
        }

    def encrypt(self, plaintext: dict, associated_data: str = "transaction") -> dict:
        nonce = pysecrets.token_hex(6)  # 12 characters, used as they are (UTF-8), as WeChat Pay
        data = json.dumps(plaintext, ensure_ascii=False).encode()
        sealed = AESGCM(self.api_v3_key.encode()).encrypt(nonce.encode(), data,
                                                          associated_data.encode())
        return {"original_type": associated_data, "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(sealed).decode(),
                "associated_data": associated_data, "nonce": nonce}

    def notification(self, event_type: str, resource: dict, *, timestamp: int | None = None,
                     summary: str = "") -> tuple[dict[str, str], str]:
        """(headers, body) of a notification, as WeChat Pay POSTs it."""
        kind = "refund" if event_type.startswith("REFUND.") else "transaction"
        envelope = {"id": f"EV-{uuid.uuid4().hex[:20]}",
                    "create_time": datetime.now(BEIJING).isoformat(timespec="seconds"),
                    "resource_type": "encrypt-resource", "event_type": event_type,
                    "summary": summary or event_type, "resource": self.encrypt(resource, kind)}
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
        return ({"Content-Type": "application/json", **self.signed_headers(body,
                                                                           timestamp=timestamp)},
                body)

    def transaction(self, out_trade_no: str, amount: int, attach: str | None, *,
                    state: str = "SUCCESS", mchid: str | None = None,
                    currency: str = "CNY") -> dict:
        tx = {"mchid": mchid or self.mchid, "appid": self.appid, "out_trade_no": out_trade_no,
              "transaction_id": "42000" + uuid.uuid4().hex[:23], "trade_type": "APP",
              "trade_state": state, "trade_state_desc": state, "bank_type": "OTHERS",
              "payer": {"openid": "o" + uuid.uuid4().hex[:27]},
              "amount": {"total": amount, "payer_total": amount, "currency": currency,
                         "payer_currency": currency}}
        if attach is not None:
            tx["attach"] = attach
        if state == "SUCCESS":
            tx["success_time"] = datetime.now(BEIJING).isoformat(timespec="seconds")
        return tx

    def refund(self, out_trade_no: str, total: int, refund: int) -> dict:
        return {"mchid": self.mchid, "out_trade_no": out_trade_no,
                "transaction_id": "42000" + uuid.uuid4().hex[:23],
                "out_refund_no": "R" + uuid.uuid4().hex[:20],
                "refund_id": "50300" + uuid.uuid4().hex[:24].translate(
                    str.maketrans("abcdef", "123456")),
                "refund_status": "SUCCESS",
                "success_time": datetime.now(BEIJING).isoformat(timespec="seconds"),
                "user_received_account": "支付用户零钱",
                "amount": {"total": total, "refund": refund, "payer_total": total,
                           "payer_refund": refund}}


def alipay_sign_string(fields: dict[str, str], *, exclude_sign_type: bool) -> str:
    skip = {"sign", "sign_type"} if exclude_sign_type else {"sign"}
    return "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in skip)


@dataclass
class AlipayKeys:
    app_id: str = "2021000000000001"
    seller_id: str = "2088000000000001"
    app_key: rsa.RSAPrivateKey = field(default_factory=_new_key)
    alipay_key: rsa.RSAPrivateKey = field(default_factory=_new_key)

    def secret(self) -> dict:
        return {"appId": self.app_id, "sellerId": self.seller_id,
                "appPrivateKey": private_pem(self.app_key),
                "alipayPublicKey": public_pem(self.alipay_key)}

    def sign_fields(self, fields: dict[str, str]) -> dict[str, str]:
        """Alipay's notification signature: every field but sign and sign_type, sorted."""
        signed = dict(fields)
        signed["sign"] = rsa_sign(self.alipay_key,
                                  alipay_sign_string(fields, exclude_sign_type=True))
        return signed

    def notification(self, fields: dict[str, str]) -> str:
        """The form body Alipay POSTs (application/x-www-form-urlencoded)."""
        return urlencode(self.sign_fields(fields))

    def trade(self, out_trade_no: str, amount: int, attach: str | None, *,
              status: str = "TRADE_SUCCESS", app_id: str | None = None,
              notify_time: datetime | None = None) -> dict[str, str]:
        """A payment notification's fields (also what the query answers, minus the envelope)."""
        now = notify_time or datetime.now(UTC)
        fields = {
            "notify_time": now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "notify_type": "trade_status_sync", "notify_id": uuid.uuid4().hex,
            "app_id": app_id or self.app_id, "charset": "utf-8", "version": "1.0",
            "sign_type": "RSA2", "trade_no": "2026" + uuid.uuid4().hex[:24],
            "out_trade_no": out_trade_no, "seller_id": self.seller_id,
            "trade_status": status, "total_amount": f"{amount // 100}.{amount % 100:02d}",
            "receipt_amount": f"{amount // 100}.{amount % 100:02d}",
            "buyer_id": "2088" + "".join(str(b % 10) for b in pysecrets.token_bytes(12)),
            "gmt_create": now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "gmt_payment": now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        }
        if attach is not None:
            fields["passback_params"] = quote(attach, safe="")
        return fields


# ---- the fake providers' server -------------------------------------------------------

@dataclass
class Order:
    channel: str
    out_trade_no: str
    amount: int
    attach: str | None
    state: str  # WeChat Pay's trade_state or Alipay's trade_status
    refunded: int = 0
    mchid: str | None = None  # WeChat Pay: another merchant's order, for tests


class FakeProviders:
    """Both fake providers on one loopback server; `handle` is data in and out."""

    def __init__(self, *, api_url: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 wechatpay: WechatPayKeys | None = None, alipay: AlipayKeys | None = None):
        self.api_url = api_url
        self.host, self.port = host, port
        self.wechatpay = wechatpay or WechatPayKeys()
        self.alipay = alipay or AlipayKeys()
        self.orders: dict[tuple[str, str], Order] = {}
        # "timeout" (answer after `delay` seconds) or an HTTP status, per provider's query.
        self.faults: dict[str, str | int] = {}
        self.delay = 10.0
        self.queries = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- what the merchant configures ---

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def wechatpay_endpoint(self) -> str:
        return self.url + WECHATPAY_PREFIX

    @property
    def alipay_endpoint(self) -> str:
        return self.url + ALIPAY_GATEWAY

    def environment(self) -> dict[str, str]:
        """The functions' settings that point the verifiers at these fakes."""
        return {"WECHATPAY_ENDPOINT": self.wechatpay_endpoint,
                "ALIPAY_ENDPOINT": self.alipay_endpoint}

    # --- recording payments ---

    def pay(self, channel: str, out_trade_no: str, amount: int, attach: str | None,
            state: str | None = None) -> Order:
        state = state or ("SUCCESS" if channel == "wechat_pay" else "TRADE_SUCCESS")
        order = Order(channel, out_trade_no, amount, attach, state)
        with self._lock:
            self.orders[(channel, out_trade_no)] = order
        return order

    def refund(self, channel: str, out_trade_no: str, amount: int) -> Order:
        with self._lock:
            order = self.orders[(channel, out_trade_no)]
            order.refunded += amount
            if channel == "wechat_pay":
                order.state = "REFUND"
            elif order.refunded >= order.amount:
                order.state = "TRADE_CLOSED"
        return order

    def payment_notification(self, order: Order) -> tuple[dict[str, str], str]:
        if order.channel == "wechat_pay":
            tx = self.wechatpay.transaction(order.out_trade_no, order.amount, order.attach,
                                            state="SUCCESS")
            return self.wechatpay.notification("TRANSACTION.SUCCESS", tx)
        fields = self.alipay.trade(order.out_trade_no, order.amount, order.attach,
                                   status="TRADE_SUCCESS")
        return ({"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                self.alipay.notification(fields))

    def refund_notification(self, order: Order, amount: int) -> tuple[dict[str, str], str]:
        if order.channel == "wechat_pay":
            return self.wechatpay.notification(
                "REFUND.SUCCESS", self.wechatpay.refund(order.out_trade_no, order.amount, amount))
        fields = self.alipay.trade(order.out_trade_no, order.amount, order.attach,
                                   status=("TRADE_CLOSED" if order.refunded >= order.amount
                                           else "TRADE_SUCCESS"))
        fields.update(refund_fee=f"{order.refunded // 100}.{order.refunded % 100:02d}",
                      out_biz_no="RF" + uuid.uuid4().hex[:16],
                      gmt_refund=fields["notify_time"])
        return ({"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                self.alipay.notification(fields))

    def send(self, channel: str, headers: dict[str, str], body: str) -> requests.Response:
        """POST a notification to the API, as the provider does."""
        if not self.api_url:
            raise RuntimeError("no API URL to notify")
        path = WECHATPAY_NOTIFY_PATH if channel == "wechat_pay" else ALIPAY_NOTIFY_PATH
        return requests.post(self.api_url + path, data=body.encode(), headers=headers,
                             timeout=30)

    # --- the providers' APIs ---

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, str], bytes]:
        path = urlsplit(target).path
        if method == "GET" and path.startswith(WECHATPAY_PREFIX + "/v3/pay/transactions/"):
            return self._wechatpay_query(target[len(WECHATPAY_PREFIX):], headers)
        if method in ("GET", "POST") and path == ALIPAY_GATEWAY:
            query = urlsplit(target).query
            if method == "POST" and body:
                query = body.decode()
            return self._alipay_gateway(query)
        if method == "POST" and path.startswith("/_fake/"):
            return self._control(path, body)
        return 404, {"Content-Type": "application/json"}, b'{"code":"NOT_FOUND"}'

    def _fault(self, name: str) -> tuple[int, dict, bytes] | None:
        fault = self.faults.get(name)
        if fault == "timeout":
            time.sleep(self.delay)
        elif isinstance(fault, int):
            return fault, {"Content-Type": "application/json"}, json.dumps(
                {"code": "SYSTEM_ERROR", "message": "fake provider fault"}).encode()
        return None

    def _wechatpay_query(self, signed_path: str, headers: dict[str, str]):
        self.queries += 1
        fault = self._fault("wechat_pay")
        if fault:
            return fault
        if not self._wechatpay_caller_ok(signed_path, headers):
            return 401, {"Content-Type": "application/json"}, json.dumps(
                {"code": "SIGN_ERROR", "message": "signature verification failed"}).encode()
        parts = urlsplit(signed_path)
        out_trade_no = parts.path.rsplit("/", 1)[-1]
        mchid = dict(parse_qsl(parts.query)).get("mchid")
        order = self.orders.get(("wechat_pay", out_trade_no))
        if order is None or mchid != self.wechatpay.mchid:
            return 404, {"Content-Type": "application/json"}, json.dumps(
                {"code": "ORDER_NOT_EXIST", "message": "order does not exist"}).encode()
        tx = self.wechatpay.transaction(order.out_trade_no, order.amount, order.attach,
                                        state=order.state, mchid=order.mchid)
        body = json.dumps(tx, separators=(",", ":"))  # ASCII: text and bytes agree
        return 200, {"Content-Type": "application/json; charset=utf-8",
                     **self.wechatpay.signed_headers(body)}, body.encode()

    def _wechatpay_caller_ok(self, signed_path: str, headers: dict[str, str]) -> bool:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        scheme, _, params = auth.partition(" ")
        if scheme != SIGNATURE_TYPE:
            return False
        fields = dict(p.split("=", 1) for p in params.split(",") if "=" in p)
        fields = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
        message = (f"GET\n{signed_path}\n{fields.get('timestamp')}\n"
                   f"{fields.get('nonce_str')}\n\n")
        return (fields.get("mchid") == self.wechatpay.mchid
                and fields.get("serial_no") == self.wechatpay.merchant_serial
                and rsa_verify(self.wechatpay.merchant_key.public_key(), message,
                               fields.get("signature", "")))

    def _alipay_gateway(self, query: str):
        self.queries += 1
        fault = self._fault("alipay")
        if fault:
            return fault
        params = dict(parse_qsl(query, keep_blank_values=True))
        signed = rsa_verify(self.alipay.app_key.public_key(),
                            alipay_sign_string(params, exclude_sign_type=False),
                            params.get("sign", ""))
        if not signed or params.get("app_id") != self.alipay.app_id:
            return self._alipay_answer("error_response", {
                "code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature",
                "sub_msg": "invalid signature"}, signed=False)
        if params.get("method") != "alipay.trade.query":
            return self._alipay_answer("error_response", {
                "code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-method"},
                signed=False)
        biz = json.loads(params.get("biz_content") or "{}")
        order = self.orders.get(("alipay", str(biz.get("out_trade_no"))))
        if order is None:
            return self._alipay_answer("alipay_trade_query_response", {
                "code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST",
                "sub_msg": "trade does not exist"})
        fields = self.alipay.trade(order.out_trade_no, order.amount, order.attach,
                                   status=order.state)
        content = {"code": "10000", "msg": "Success", "trade_no": fields["trade_no"],
                   "out_trade_no": order.out_trade_no, "trade_status": order.state,
                   "total_amount": fields["total_amount"],
                   "buyer_pay_amount": fields["total_amount"], "send_pay_date":
                   fields["gmt_payment"], "buyer_user_id": fields["buyer_id"]}
        if order.attach is not None:
            content["passback_params"] = fields["passback_params"]
        return self._alipay_answer("alipay_trade_query_response", content)

    def _alipay_answer(self, name: str, content: dict, signed: bool = True):
        text = json.dumps(content, separators=(",", ":"))
        body = f'{{"{name}":{text}'
        if signed:
            body += f',"sign":"{rsa_sign(self.alipay.alipay_key, text)}"'
        body += "}"
        return 200, {"Content-Type": "text/html;charset=utf-8"}, body.encode()

    def _control(self, path: str, body: bytes):
        try:
            request = json.loads(body or b"{}")
            channel = request["channel"]
            if channel not in ("wechat_pay", "alipay"):
                raise ValueError(channel)
            if path == "/_fake/payments":
                order = self.pay(channel, str(request["outTradeNo"]), int(request["amount"]),
                                 request.get("attach"))
                headers, payload = self.payment_notification(order)
            elif path == "/_fake/refunds":
                order = self.refund(channel, str(request["outTradeNo"]),
                                    int(request["amount"]))
                headers, payload = self.refund_notification(order, int(request["amount"]))
            else:
                return 404, {"Content-Type": "application/json"}, b'{"code":"NOT_FOUND"}'
        except (KeyError, ValueError, TypeError) as exc:
            return 400, {"Content-Type": "application/json"}, json.dumps(
                {"code": "BAD_REQUEST", "message": str(exc)}).encode()
        answer = {"outTradeNo": order.out_trade_no, "notified": False}
        if request.get("notify", True) and self.api_url:
            sent = self.send(channel, headers, payload)
            answer.update(notified=True, status=sent.status_code, response=sent.text)
        return 200, {"Content-Type": "application/json"}, json.dumps(
            answer, ensure_ascii=False).encode()

    # --- serving ---

    def start(self) -> FakeProviders:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(min(length, 1 << 20)) if length else b""
                status, headers, payload = fake.handle(self.command, self.path,
                                                       dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, format, *args):
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                         name="fake-payment-providers", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# ---- the local stack's Secrets Manager ------------------------------------------------

class LocalSecrets:
    """moto's server on loopback, holding the fakes' secrets; handlers reach it through
    AWS_ENDPOINT_URL_SECRETS_MANAGER, as they reach Secrets Manager in AWS."""

    def __init__(self, port: int) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per secret read
        self.port = port
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, secrets: dict[str, dict], region: str) -> LocalSecrets:
        import boto3

        self._server.start()
        client = boto3.client("secretsmanager", endpoint_url=self.endpoint, region_name=region,
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        for name, value in secrets.items():
            client.create_secret(Name=name, SecretString=json.dumps(value))
        return self

    def stop(self) -> None:
        self._server.stop()


# ---- `membership-local pay` -----------------------------------------------------------

def _pay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("provider", choices=["wechatpay", "alipay"])
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--sub", help="the member's JWT subject (as in `membership-local token`)")
    who.add_argument("--member-id", help="the member id (GET /v1/members/me says it)")
    parser.add_argument("--amount", type=int,
                        help="fen; a payment (default 10000; with --plan, its price)")
    parser.add_argument("--refund", type=int, metavar="FEN",
                        help="refund this much of --reference instead of paying")
    parser.add_argument("--reference", help="the merchant order number (default: a new one)")
    parser.add_argument("--no-notify", action="store_true",
                        help="record the payment only; the app's own call verifies it")
    plan = parser.add_argument_group("paying for a plan term instead of a top-up")
    plan.add_argument("--plan", metavar="PLAN_ID",
                      help="pay for a term of this paid plan (e.g. PLUS), with its attach")
    plan.add_argument("--term", choices=["monthly", "quarterly", "yearly"], default="monthly")
    plan.add_argument("--term-number", type=int, metavar="N",
                      help="the term the payment buys (default with --sub: the plan's "
                           "nextTerm, read from the API)")


def _plan_payment(args: argparse.Namespace, stack: dict, member_id: str
                  ) -> tuple[str, int] | None:
    """(attach, amount) of a plan term's payment: what the app reads from the API (the
    plan's nextTerm and price) unless given. None, with the reason printed, if it cannot."""
    from membership.domain.payments import plan_attach

    number, amount = args.term_number, args.amount
    if number is None or amount is None:
        if not args.sub:
            print("membership-local: with --member-id, --plan needs --term-number and "
                  "--amount", file=sys.stderr)
            return None
        from .apigw import DEFAULT_AUDIENCE, DEFAULT_ISSUER
        from .jwt import mint_token

        token = mint_token(args.sub, ["member"], issuer=stack.get("issuer", DEFAULT_ISSUER),
                           audience=stack.get("audience", DEFAULT_AUDIENCE))
        auth = {"Authorization": f"Bearer {token}"}
        if number is None:
            read = requests.get(f"{stack['api_url']}/v1/members/me/subscriptions",
                                params={"planId": args.plan}, headers=auth, timeout=30)
            if not read.ok:
                print(f"membership-local: reading the plan failed: {read.text}",
                      file=sys.stderr)
                return None
            number = read.json()["nextTerm"]
        if amount is None:
            program = requests.get(f"{stack['api_url']}/v1/program", headers=auth, timeout=30)
            plans = {p["id"]: p for p in program.json().get("paidPlans", [])}
            if args.plan not in plans:
                print(f"membership-local: the program has no paid plan {args.plan}",
                      file=sys.stderr)
                return None
            amount = plans[args.plan]["prices"][args.term]
    return plan_attach(member_id, args.plan, args.term, number), amount


@command("pay", "pay (or refund) a top-up or a plan term at the local fake WeChat Pay or "
                "Alipay, which notifies the API as the real one does", _pay_arguments)
def pay(args: argparse.Namespace) -> int:
    from .cli import read_stack

    stack = read_stack()
    if not stack or not stack.get("fake_providers_url"):
        print("membership-local: no running stack with fake payment providers "
              "(start it with `membership-local up`)", file=sys.stderr)
        return 1
    if args.member_id:
        member_id = args.member_id
    else:
        sys.path.insert(0, os.fspath(_functions_dir()))
        from membership.domain.members import member_id_for

        member_id = member_id_for(args.sub)
    from membership.domain.payments import topup_attach

    channel = "wechat_pay" if args.provider == "wechatpay" else "alipay"
    if args.refund is not None:
        if not args.reference:
            print("membership-local: --refund needs --reference", file=sys.stderr)
            return 1
        path, body = "/_fake/refunds", {"channel": channel, "outTradeNo": args.reference,
                                        "amount": args.refund}
    else:
        attach, amount = topup_attach(member_id), args.amount or 10_000
        if args.plan:
            planned = _plan_payment(args, stack, member_id)
            if planned is None:
                return 1
            attach, amount = planned
        body = {"channel": channel, "amount": amount,
                "outTradeNo": args.reference or f"LOCAL{uuid.uuid4().hex[:20].upper()}",
                "attach": attach, "notify": not args.no_notify}
        path = "/_fake/payments"
    answer = requests.post(stack["fake_providers_url"] + path, json=body, timeout=60)
    print(json.dumps(answer.json(), indent=2, ensure_ascii=False))
    return 0 if answer.ok and answer.json().get("status", 200) < 300 else 1


def _functions_dir():
    from .paths import repo_root

    return repo_root() / "functions"
