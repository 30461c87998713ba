"""The Volteras access token, shared through the database.

Every portal process and worker reads the same `ApiToken` row (one per API
URL), so ten workers make one token request, not ten. Renewal is decided in a
short transaction (a row lock on PostgreSQL; SQLite's write lock): the first
process to find the token stale takes a lease (`renewing_until`) and the
others wait for the token it stores. The token request itself runs outside
any transaction: it may take a timeout times every retry, and holding
SQLite's write lock that long would give every other writer "database is
locked". The result is stored only while the lease is still ours, so a
renewer that outlived its lease never overwrites the one that took over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connections.models.system import ApiToken
from connections.volteras.errors import (
    AuthenticationError,
    NotPermitted,
    UnexpectedResponse,
    ValidationError,
)
from connections.volteras.http import VolterasHttp

logger = logging.getLogger("connections.volteras")

TOKEN_PATH = "/v1/oauth2/token"

# Renew this long before expiry (capped at a tenth of the lifetime, so a
# short-lived token is still used for most of its life).
RENEW_MARGIN = timedelta(seconds=60)

# A renewer that died (a worker killed mid-request) leaves its lease behind;
# after this long another process renews, and until then every process waits.
# A live renewer slower than this is harmless: its token is stored only while
# the lease is still its own. The same span as a dead worker's batch lease.
RENEWAL_LEASE = timedelta(seconds=settings.WORKER_LEASE_SECONDS)
# How often a process waiting for another's renewal looks at the row again.
WAIT_STEP_SECONDS = 0.1


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: datetime
    issued_at: datetime

    def is_fresh(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        margin = min(RENEW_MARGIN, (self.expires_at - self.issued_at) / 10)
        return bool(self.access_token) and now < self.expires_at - margin


def _token_of(row: ApiToken) -> Token | None:
    if not row.access_token or row.expires_at is None:
        return None
    return Token(row.access_token, row.expires_at, row.updated_at or row.expires_at)


class TokenStore:
    """Hands out a valid bearer token for one API URL and set of credentials."""

    def __init__(self, http: VolterasHttp, api_url: str, client_id: str, client_secret: str):
        self.http = http
        self.api_url = api_url.rstrip("/")
        self._credentials = (client_id, client_secret)
        # Waiting for another process's renewal (replaceable in tests).
        self.wait: Callable[[float], None] = time.sleep

    def get(self) -> str:
        # Read the row on every call (one indexed query, cheap beside the HTTP
        # call it precedes) rather than keep a per-process copy: the row is the
        # one truth, so a token renewed or cleared anywhere is seen everywhere.
        row = ApiToken.objects.filter(api_url=self.api_url).first()
        token = _token_of(row) if row else None
        if token is not None and token.is_fresh():
            return token.access_token
        return self.renew()

    def renew(self, rejected: str | None = None) -> str:
        """Get a new token unless another process already did (or is doing so).

        `rejected` is a token Volteras just answered 401 to: a stored token
        equal to it is renewed even if its clock says it is still valid.
        """
        ApiToken.objects.get_or_create(api_url=self.api_url)
        # A lease whose holder is gone is taken over; so is one that, by this
        # process's own clock, has been held longer than any renewal takes.
        give_up_at = time.monotonic() + RENEWAL_LEASE.total_seconds()
        while True:
            decision = self._claim(rejected, take_over=time.monotonic() >= give_up_at)
            if isinstance(decision, str):
                return decision
            if decision is not None:
                break
            self.wait(WAIT_STEP_SECONDS)

        lease, refresh_token = decision
        try:
            access_token, new_refresh_token, expires_in = self._fetch(refresh_token)
        except BaseException:
            ApiToken.objects.filter(api_url=self.api_url, renewing_until=lease).update(
                renewing_until=None
            )
            raise
        now = timezone.now()
        stored = ApiToken.objects.filter(api_url=self.api_url, renewing_until=lease).update(
            access_token=access_token,
            refresh_token=new_refresh_token,
            expires_at=now + timedelta(seconds=expires_in),
            updated_at=now,
            renewing_until=None,
        )
        if not stored:
            logger.info("volteras token renewal outlived its lease; not stored")
        return access_token

    def _claim(self, rejected: str | None, take_over: bool) -> str | tuple[datetime, str] | None:
        """Under a short lock: a fresh token to use, or our lease and the
        refresh token to renew with, or None while another process renews."""
        with transaction.atomic():
            row = ApiToken.objects.select_for_update().get(api_url=self.api_url)
            current = _token_of(row)
            if current is not None and current.is_fresh() and current.access_token != rejected:
                return current.access_token
            now = timezone.now()
            if row.renewing_until is not None and row.renewing_until > now and not take_over:
                return None
            lease = now + RENEWAL_LEASE
            ApiToken.objects.filter(pk=row.pk).update(renewing_until=lease)
            return lease, row.refresh_token

    def _fetch(self, refresh_token: str) -> tuple[str, str, int]:
        if refresh_token:
            try:
                return self._grant({"grant_type": "refresh_token", "refresh_token": refresh_token})
            except (AuthenticationError, ValidationError, NotPermitted) as exc:
                logger.info(
                    "volteras refresh token refused (%s); using client credentials",
                    exc.code or exc.status,
                )
        return self._grant({"grant_type": "client_credentials"})

    def _grant(self, form: dict[str, str]) -> tuple[str, str, int]:
        # Asking for a token twice is harmless, so a timed-out token request
        # is retried like a read.
        response = self.http.request(
            "POST", TOKEN_PATH, data=form, auth=self._credentials, idempotent=True
        )
        try:
            body = response.json()
            access_token = body["access_token"]
            expires_in = int(body["expires_in"])
            refresh_token = body.get("refresh_token") or ""
        except (ValueError, KeyError, TypeError) as exc:
            raise UnexpectedResponse(
                f"token answer without access_token/expires_in ({exc.__class__.__name__})",
                status=response.status_code,
            ) from exc
        if not isinstance(access_token, str) or not access_token or expires_in <= 0:
            raise UnexpectedResponse("token answer with an empty token or no lifetime")
        logger.info("volteras token obtained via %s, valid %ds", form["grant_type"], expires_in)
        return access_token, refresh_token, expires_in
