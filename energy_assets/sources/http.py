"""Bounded, jittered retries for every source's HTTP calls, with secrets kept out of errors.

What is retried: transport faults (connection refused or dropped, timeouts, a body cut
mid-transfer), throttling and outages (429, 5xx), and whatever a source's body check flags with
RetryableSourceError (a truncated or corrupt body, OASIS "retry later" zips). What is not: every
other answer, which the source's check turns into a typed error at once (a refused key, a bad
request). This module owns the backoff arithmetic (with an injectable `sleep`, so tests never
wait), the optional pacing between requests (OASIS wants >= 5 s) and the redaction of errors.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import requests

from energy_assets.sources.base import (  # the error classes are re-exported from here
    KeyRefused,
    MalformedResponse,
    RawResponse,
    RefusedValue,
    RequestRefused,
    RetriesExhausted,
    RetryableSourceError,
    SourceError,
    TransientSourceError,
    redact,
)

__all__ = [
    "HttpFetcher",
    "KeyRefused",
    "MalformedResponse",
    "RefusedValue",
    "RequestRefused",
    "RetriesExhausted",
    "RetryPolicy",
    "RetryableSourceError",
    "SourceError",
    "TransientSourceError",
]


class RetrySettings(Protocol):
    """The retry fields every source config declares (each with its own defaults)."""

    max_attempts: int
    base_delay_s: float
    max_delay_s: float
    timeout_s: float
    retry_seed: int | None


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: wait uniform(0, min(max_delay, base * 2**attempt))."""

    max_attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    retry_statuses: Collection[int] = (403, 429, 500, 502, 503, 504)
    timeout_s: float = 60.0
    seed: int | None = None

    @classmethod
    def from_config(cls, config: RetrySettings) -> RetryPolicy:
        """A client's policy from its config's retry fields. 403 is not retried here: each
        client judges it (a refused key is not a transient failure)."""
        return cls(
            max_attempts=config.max_attempts,
            base_delay_s=config.base_delay_s,
            max_delay_s=config.max_delay_s,
            retry_statuses=(429, 500, 502, 503, 504),
            timeout_s=config.timeout_s,
            seed=config.retry_seed,
        )

    def delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        if retry_after_s is not None:
            return min(self.max_delay_s, retry_after_s)
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


@dataclass
class HttpFetcher:
    """GET with bounded retries, optional pacing, and redacted errors.

    `check(response)` may raise RetryableSourceError for bodies that mean "try later" despite a
    200 status; any other exception from it propagates unchanged.
    """

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    min_interval_s: float = 0.0
    secrets: list[str | None] = field(default_factory=list)
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep
    _last_request: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    requests_made: int = field(default=0, init=False)
    retries_made: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.policy.seed)

    def _pace(self) -> None:
        if self.min_interval_s <= 0:
            return
        with self._lock:
            wait = self._last_request + self.min_interval_s - time.monotonic()
            if wait > 0:
                self.sleep(wait)
            self._last_request = time.monotonic()

    def get(
        self,
        url: str,
        params: dict[str, object] | list[tuple[str, object]] | None = None,
        headers: dict[str, str] | None = None,
        check: Callable[[requests.Response], None] | None = None,
    ) -> requests.Response:
        last_problem = ""
        for attempt in range(self.policy.max_attempts):
            self._pace()
            retry_after: float | None = None
            try:
                self.requests_made += 1
                response = self.session.get(
                    url, params=params, headers=headers, timeout=self.policy.timeout_s
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,  # connection dropped mid-body
                requests.exceptions.ContentDecodingError,
            ) as exc:
                last_problem = f"{type(exc).__name__}: {redact(str(exc), self.secrets)}"
            else:
                if response.status_code in self.policy.retry_statuses:
                    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                    last_problem = f"HTTP {response.status_code}: {self._snippet(response)}"
                else:
                    try:
                        if check is not None:
                            check(response)
                        return response
                    except RetryableSourceError as exc:
                        retry_after = exc.retry_after_s
                        last_problem = redact(str(exc), self.secrets)
            if attempt + 1 < self.policy.max_attempts:
                self.retries_made += 1
                self.sleep(self.policy.delay(attempt, retry_after, self._rng))
        raise RetriesExhausted(
            f"GET {self.redacted_url(url, params)} failed after {self.policy.max_attempts} "
            f"attempts; last problem: {last_problem}. The service may be throttling or down: "
            "retry later, or lower the request rate / concurrency pool limit."
        )

    def record(
        self, source: str, dataset: str, url: str, params: dict, page: int, response
    ) -> RawResponse:
        """The verbatim record of one answer, with URL and parameters redacted."""
        return RawResponse(
            source=source,
            dataset=dataset,
            request_url=self.redacted_url(url, params),
            request_params={
                k: redact(str(v), self.secrets) if isinstance(v, str) else v
                for k, v in params.items()
            },
            page=page,
            status=response.status_code,
            content_type=response.headers.get("Content-Type", ""),
            fetched_at_utc=datetime.now(UTC),
            body=response.content,
        )

    def redacted_url(self, url: str, params: object = None) -> str:
        prepared = requests.Request("GET", url, params=params).prepare()
        return redact(prepared.url or url, self.secrets)

    def _snippet(self, response: requests.Response) -> str:
        return redact(response.text[:300], self.secrets)
