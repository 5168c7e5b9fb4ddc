"""Dev JWTs: minted tokens verify; tampered, expired or foreign ones do not."""
import os
import stat

import jwt as pyjwt
import pytest

from membership_local import jwt as devjwt


@pytest.fixture
def key_file(tmp_path):
    return tmp_path / "state" / "jwt-key.pem"


def test_mint_and_verify_round_trip(key_file):
    token = devjwt.mint_token("user-1", ["member", "orders"], key_file=key_file)
    claims = devjwt.verify_token(token, key_file=key_file)
    assert claims["sub"] == "user-1"
    assert claims["scope"] == "member orders"
    assert claims["iss"] == "http://127.0.0.1:3000/local-issuer"
    assert claims["aud"] == "membership-local"
    assert claims["exp"] - claims["iat"] == 3600
    assert devjwt.token_scopes(claims) == ["member", "orders"]
    assert pyjwt.get_unverified_header(token)["alg"] == "RS256"


def test_key_is_created_once_and_private(key_file):
    devjwt.mint_token("a", key_file=key_file)
    first = key_file.read_bytes()
    assert stat.S_IMODE(os.stat(key_file).st_mode) & 0o077 == 0
    devjwt._keys.clear()  # a new process reads the same key back
    token = devjwt.mint_token("a", key_file=key_file)
    assert key_file.read_bytes() == first
    devjwt.verify_token(token, key_file=key_file)


def test_expired_token_is_rejected(key_file):
    token = devjwt.mint_token("a", ttl=-10, key_file=key_file)
    with pytest.raises(devjwt.InvalidToken, match="expired"):
        devjwt.verify_token(token, key_file=key_file)


def test_wrong_issuer_or_audience_is_rejected(key_file):
    token = devjwt.mint_token("a", issuer="http://elsewhere", key_file=key_file)
    with pytest.raises(devjwt.InvalidToken, match="issuer"):
        devjwt.verify_token(token, key_file=key_file)
    token = devjwt.mint_token("a", audience="other", key_file=key_file)
    with pytest.raises(devjwt.InvalidToken, match=r"(?i)audience"):
        devjwt.verify_token(token, key_file=key_file)


def test_issuer_follows_the_gateway_url(key_file):
    issuer = devjwt.issuer_for("http://127.0.0.1:4123/")
    assert issuer == "http://127.0.0.1:4123/local-issuer"
    token = devjwt.mint_token("a", issuer=issuer, key_file=key_file)
    assert devjwt.verify_token(token, issuer=issuer, key_file=key_file)["iss"] == issuer


def test_token_signed_by_another_key_is_rejected(key_file, tmp_path):
    other = devjwt.mint_token("a", key_file=tmp_path / "other.pem")
    with pytest.raises(devjwt.InvalidToken):
        devjwt.verify_token(other, key_file=key_file)


def test_tampered_or_garbage_token_is_rejected(key_file):
    token = devjwt.mint_token("a", key_file=key_file)
    header, _payload, signature = token.split(".")
    forged = pyjwt.encode({"sub": "b"}, "s" * 32, algorithm="HS256")
    for bad in ("", "not-a-jwt", f"{header}.{forged.split('.')[1]}.{signature}", forged):
        with pytest.raises(devjwt.InvalidToken):
            devjwt.verify_token(bad, key_file=key_file)


def test_scp_list_is_read_too():
    assert devjwt.token_scopes({"scp": ["admin"]}) == ["admin"]
    assert devjwt.token_scopes({}) == []


def test_jwks_publishes_the_public_key(key_file):
    token = devjwt.mint_token("a", key_file=key_file)
    (jwk,) = devjwt.jwks(key_file)["keys"]
    assert jwk["kty"] == "RSA" and jwk["kid"] == pyjwt.get_unverified_header(token)["kid"]
    public = pyjwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    pyjwt.decode(token, public, algorithms=["RS256"], audience="membership-local")
