"""Admin accounts and API tokens as the HTTP API and `sipsync-admin` handle them, over the store's
admin tables: the one place where passwords are hashed (scrypt) and tokens are made and hashed
(SHA-256), and where a login is checked."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from ..store import AdminRow, AdminStore, StoreError, TokenRow

# scrypt at 16 MiB of memory: about 40 ms per guess on one core.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
TOKEN_PREFIX = "ssk_"


class AdminAccounts:
    def __init__(self, store: AdminStore) -> None:
        self.store = store

    def add_admin(self, name: str, password: str, role: str) -> None:
        if not password:
            raise StoreError("empty password")
        self.store.add_admin(name, hash_password(password), role)

    def remove_admin(self, name: str) -> None:
        self.store.remove_admin(name)

    def admins(self) -> list[AdminRow]:
        return self.store.admins()

    def login(self, name: str, password: str) -> AdminRow | None:
        """The admin these credentials are right for, or None."""
        admin = self.store.admin(name)
        # An unknown name costs the same hash as a wrong password, so timing tells nothing.
        stored = admin.password_hash if admin else _dummy_hash()
        if not check_password(password, stored) or admin is None:
            return None
        return admin

    def create_token(self, name: str, role: str) -> str:
        """A new token; only its hash is kept, so this is the one time it is seen."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.store.add_token(name, hash_token(token), role)
        return token

    def revoke_token(self, name: str) -> None:
        self.store.remove_token(name)

    def tokens(self) -> list[TokenRow]:
        return self.store.tokens()

    def token(self, token: str) -> TokenRow | None:
        """The stored token this one is, or None."""
        return self.store.token(hash_token(token))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return "scrypt$%d$%d$%d$%s$%s" % (
        _SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _b64(salt), _b64(digest)
    )


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        actual = hashlib.scrypt(password.encode(), salt=base64.urlsafe_b64decode(salt + "=="),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def hash_token(token: str) -> str:
    # Tokens are long and random: a fast hash is enough, and lets every request look one up.
    return hashlib.sha256(token.encode()).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    """A valid hash of nothing anyone knows: checked against when the admin name is unknown."""
    return hash_password("no admin has this password")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
