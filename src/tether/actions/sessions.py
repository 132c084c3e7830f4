"""Sessions: logging in (throttled, the password checked outside any transaction), the tokens
that API clients and UI sessions carry, their lifetime and idle timeout, and logging out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from dataclasses import dataclass
from typing import NoReturn

from tether import errors
from tether.actions import events, passwords
from tether.actions.context import Context
from tether.actions.throttle import LoginThrottle
from tether.statuses import Event
from tether.store import users
from tether.store.users import Session, User

# Last use is written at most this often per token: the idle timeout must not cost every
# request a store write.
TOUCH_EVERY_S = 60.0


@dataclass(frozen=True)
class Lifetimes:
    """How long a token lasts: ``ttl_s`` after login at most, ``idle_s`` after its last use."""

    ttl_s: float
    idle_s: float


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_expired(session: Session, lifetimes: Lifetimes, now: float) -> bool:
    """Whether ``session`` is past its lifetime or has been idle too long at ``now``."""
    last_used_at = session.last_used_at or session.created_at
    return now >= session.created_at + lifetimes.ttl_s or now >= last_used_at + lifetimes.idle_s


def is_touch_due(session: Session, now: float) -> bool:
    """Whether ``session``'s last use should be written again."""
    return now - (session.last_used_at or session.created_at) >= TOUCH_EVERY_S


def authenticate(ctx: Context, lifetimes: Lifetimes, digest: str) -> Session:
    """The live session of the token with ``digest``, its last use written if due."""
    with ctx.db.read() as conn:
        found = users.session_for_token(conn, digest)
    now = ctx.now()
    if found is None:
        raise errors.Unauthenticated()
    if is_expired(found, lifetimes, now):
        raise errors.SessionExpired()
    if not is_touch_due(found, now):
        return found
    with ctx.transaction() as tx:
        users.touch_token(tx.conn, digest, now)
    return dataclasses.replace(found, last_used_at=now)


class SignIns:
    """Logins, and sessions kept in memory until a user or a token changes (Event.USERS).

    Every API request carries a token: looking it up in the store cost each request a
    worker-thread hop. Users and tokens change only through the actions, which announce
    every change after its commit. A kept session is still checked against the clock on
    every request, and once a minute it is read again to write its last use.
    """

    def __init__(self, ctx: Context, lifetimes: Lifetimes) -> None:
        self._ctx = ctx
        self.lifetimes = lifetimes
        self.throttle = LoginThrottle(ctx.now)
        self._sessions: events.KeptUntilChanged[Session] = events.KeptUntilChanged(
            ctx.events, Event.USERS
        )

    def login(self, name: str, password: str, address: str) -> tuple[str, User]:
        """Check a user's password and issue a new token; blocking (a quarter second)."""
        self.throttle.check(name, address)
        for _ in range(2):  # again if the user changed between the check and the token
            found = self._checked(name, password, address)
            token = secrets.token_urlsafe(32)
            issued = _issue(self._ctx, self.lifetimes, found, password, token_digest(token))
            if issued is not None:
                self.throttle.record_success(name)
                return token, issued
        raise errors.BadCredentials()

    def _checked(self, name: str, password: str, address: str) -> User:
        """The enabled user ``name`` if ``password`` is theirs; the check holds no transaction."""
        with self._ctx.db.read() as conn:
            found = users.find(conn, name)
        if found is None or not found.is_enabled:
            # Hash anyway, so that timing does not tell which user names exist.
            passwords.check_against_nothing(password)
            self._refuse(name, address)
        if not passwords.is_password_correct(password, found.password_hash):
            self._refuse(name, address)
        return found

    def _refuse(self, name: str, address: str) -> NoReturn:
        self.throttle.record_failure(name, address)
        raise errors.BadCredentials()

    def kept(self, token: str) -> User | None:
        """The user holding ``token`` if known without reading the store, else None."""
        session = self._sessions.kept(token_digest(token))[1]
        now = self._ctx.now()
        if session is None or is_expired(session, self.lifetimes, now):
            return None
        return None if is_touch_due(session, now) else session.user

    def authenticate(self, token: str) -> User:
        """The user holding ``token``, read from the store; blocking."""
        digest = token_digest(token)
        return self._sessions.read(
            digest, lambda: authenticate(self._ctx, self.lifetimes, digest)
        ).user

    def logout(self, token: str) -> None:
        """Revoke ``token``."""
        with self._ctx.transaction() as tx:
            users.revoke_token(tx.conn, token_digest(token), self._ctx.now())
            tx.publish(Event.USERS)


def _issue(
    ctx: Context, lifetimes: Lifetimes, found: User, password: str, digest: str
) -> User | None:
    """Record a new token for ``found``, whose password was just checked, rehashing an old
    cost; None when the user changed meanwhile (disabled, a new password, or rehashed by a
    login at the same moment), so that the password must be checked again."""
    new_hash = None
    if passwords.needs_rehash(found.password_hash):
        new_hash = passwords.hash_password(password)
    now = ctx.now()
    with ctx.transaction() as tx:
        if users.find(tx.conn, found.name) != found:
            return None
        if new_hash is not None:
            users.update(tx.conn, found.name, password_hash=new_hash)
        users.delete_tokens_created_before(tx.conn, found.name, now - lifetimes.ttl_s)
        users.insert_token(tx.conn, digest, found.name, now)
        return users.get(tx.conn, found.name)
