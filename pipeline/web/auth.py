"""Sign-in: argon2 password hashes, server-side sessions, CSRF tokens and the login rate limit.

The cookie carries a random token; the database keeps only an HMAC of it under the secret key, so a copy of
the database (or a backup) opens no session. Each session has its own CSRF token, returned at sign-in and
checked on every state-changing request (header ``X-CSRF-Token``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from pipeline.config import WebSettings
from pipeline.errors import ConfigError
from pipeline.store import review as repo
from pipeline.store.models import utcnow
from pipeline.store.review import User

log = logging.getLogger("zhijian.web")
MIN_SECRET = 32
CSRF_HEADER = "X-CSRF-Token"
_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory parameters
# Verified against when the login does not exist, so an unknown login costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("the password is empty")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def secret_key(web: WebSettings) -> bytes:
    """The key sessions are hashed under. Production refuses to start without a strong one (E080); a
    development run without one gets a random key (sessions then end when the process does)."""
    raw = web.secret_key.get_secret_value() if web.secret_key is not None else ""
    if not raw:
        if web.production:
            raise ConfigError("E080", problem="is missing")
        log.warning("ZHIJIAN_WEB__SECRET_KEY is not set: using a random key; sessions end on restart")
        return secrets.token_bytes(32)
    if len(raw) < MIN_SECRET or len(set(raw)) < 8:
        if web.production:
            raise ConfigError("E080", problem=f"is too weak ({len(raw)} characters, {len(set(raw))} distinct)")
        log.warning("ZHIJIAN_WEB__SECRET_KEY is weak; production mode would refuse it")
    return raw.encode()


@dataclass(frozen=True)
class Keys:
    secret: bytes

    def session_id(self, token: str) -> str:
        return hmac.new(self.secret, token.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str  # the cookie's value
    csrf_token: str
    expires_at: dt.datetime


class RateLimited(Exception):
    """Too many wrong passwords for this login lately (429); ``retry_after`` in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


def sign_in(s: Session, web: WebSettings, keys: Keys, login: str, password: str,
            now: dt.datetime | None = None) -> SignedIn | None:
    """Check the password and open a session; None for a wrong login or password (the same answer for
    both). ``RateLimited`` once ``login_max_failures`` failures for the login fall within the window: from
    then on even the right password is refused until the oldest of them leaves the window."""
    now = now or utcnow()
    if "\x00" in login or "\x00" in password:  # no account has one (and PostgreSQL refuses NUL in text)
        return None
    window = dt.timedelta(minutes=web.login_window_minutes)
    since = now - window
    if repo.recent_failures(s, login, since) >= web.login_max_failures:
        oldest = repo.oldest_recent_failure(s, login, since) or now
        raise RateLimited(max(1, int((oldest + window - now).total_seconds()) + 1))
    found = repo.user_with_hash(s, login)
    ok = verify_password(found[1] if found else _DUMMY_HASH, password) and found is not None
    if not ok or found is None:
        repo.add_failure(s, login, now)
        s.commit()
        return None
    user, stored_hash = found
    if _hasher.check_needs_rehash(stored_hash):
        repo.set_password_hash(s, user.id, _hasher.hash(password))
    repo.clear_failures(s, login)
    repo.purge_expired_sessions(s, now)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + dt.timedelta(hours=web.session_hours)
    repo.create_session(s, keys.session_id(token), user.id, csrf, expires)
    s.commit()
    return SignedIn(user=user, token=token, csrf_token=csrf, expires_at=expires)


def session_of(s: Session, keys: Keys, token: str | None) -> tuple[User, str, str] | None:
    """(user, csrf token, session id) for a cookie's token, if its session is live."""
    if not token:
        return None
    session_id = keys.session_id(token)
    found = repo.session_user(s, session_id, utcnow())
    return (found[0], found[1], session_id) if found is not None else None


def sign_out(s: Session, session_id: str) -> None:
    repo.delete_session(s, session_id)
    s.commit()


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
