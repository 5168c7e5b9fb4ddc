"""Dev JWTs for the local gateway: RS256, shaped like Cognito access tokens.

The signing key is generated on first use and kept under the state directory
(`.membership-local/jwt-key.pem`), so tokens minted by `membership-local token` in one
shell are accepted by the gateway started in another.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .apigw import DEFAULT_AUDIENCE, DEFAULT_ISSUER
from .paths import state_dir

ALGORITHM = "RS256"
ISSUER_PATH = "/local-issuer"
KEY_FILE = "jwt-key.pem"
DEFAULT_TTL = 3600

_keys: dict[Path, rsa.RSAPrivateKey] = {}
_keys_lock = threading.Lock()


class InvalidToken(Exception):
    """The token is missing, malformed, badly signed, expired, or for another issuer/audience."""


def issuer_for(base_url: str) -> str:
    return base_url.rstrip("/") + ISSUER_PATH


def key_path() -> Path:
    return state_dir() / KEY_FILE


def signing_key(path: Path | None = None) -> rsa.RSAPrivateKey:
    path = Path(path or key_path())
    with _keys_lock:
        if path not in _keys:
            _keys[path] = _load_or_create(path)
        return _keys[path]


def _load_or_create(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jwt-key-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            # link() never overwrites: when two processes race, the first key wins for both.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _kid(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def mint_token(
    sub: str,
    scopes: Iterable[str] = ("member",),
    *,
    ttl: int = DEFAULT_TTL,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    claims: Mapping[str, object] | None = None,
    key_file: Path | None = None,
) -> str:
    """A signed token with sub, space-separated scope (as Cognito writes it), iat and exp."""
    key = signing_key(key_file)
    now = int(time.time())
    payload = {
        "sub": sub,
        "scope": " ".join(scopes),
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl,
        "token_use": "access",
        **(claims or {}),
    }
    return pyjwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": _kid(key)})


def verify_token(
    token: str,
    *,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    key_file: Path | None = None,
    leeway: float = 0,
) -> dict:
    """The token's claims after checking signature, iss, aud and exp; else InvalidToken."""
    key = signing_key(key_file)
    try:
        return pyjwt.decode(
            token,
            key.public_key(),
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iat", "iss", "sub"]},
        )
    except pyjwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None


def token_scopes(claims: Mapping[str, object]) -> list[str]:
    """Scopes from `scope` (space-separated string) or `scp` (list), as API Gateway reads them."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    if isinstance(scp, list):
        return [str(s) for s in scp]
    return []


def jwks(key_file: Path | None = None) -> dict:
    """The public key set, for clients that want to verify tokens themselves."""
    key = signing_key(key_file)
    jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=_kid(key), alg=ALGORITHM, use="sig")
    return {"keys": [jwk]}

