"""The verifier a brand with both WeChat Pay and Alipay names: each claim goes to the
provider of its channel (`wechat_pay`, `alipay`). A channel whose provider has no secret
configured is refused, never accepted (docs/payments.md)."""
from __future__ import annotations

from membership.domain.topups import PaymentNotVerified
from membership.services.payments import PaymentClaim, VerifiedPayment


class ProviderVerifier:
    def verify(self, claim: PaymentClaim) -> VerifiedPayment:
        # Each provider's module (and SDK) is loaded when its first claim arrives.
        if claim.channel == "wechat_pay":
            from membership.services.wechatpay import WechatPayVerifier

            return WechatPayVerifier().verify(claim)
        if claim.channel == "alipay":
            from membership.services.alipay import AlipayVerifier

            return AlipayVerifier().verify(claim)
        raise PaymentNotVerified("payments are verified through wechat_pay or alipay only",
                                 channel=claim.channel)
