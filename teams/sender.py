"""Messages to Teams: new ones, updates of a card in place, and Teams' send limits held.

Teams throttles a bot per conversation (Microsoft Learn, "Optimize your bot: rate
limiting and best practices": per bot per thread 7 messages a second, 8 per 2 seconds,
60 per 30 seconds, 1,800 an hour) and answers a message past them with 429 and a
Retry-After. We keep under the first three windows before sending, and on a 429 wait
what Retry-After says and try again, a few times (as `bot.app` does with Slack's 429s).
The same page: "error codes 412, 502, and 504 must also be retried": those are tried
again after a short back-off with jitter.
The SDK's conversation client does the HTTP and the bot's token.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx
from microsoft_teams.api import MessageActivityInput
from microsoft_teams.api.models import Attachment

from teams.bridge import LoopThread
from teams.cards.common import MAX_MESSAGE_BYTES, Card, attachment, size

log = logging.getLogger(__name__)

# (seconds, messages) per conversation, from the page above.
WINDOWS = ((1.0, 7), (2.0, 8), (30.0, 60))
RETRIES_429 = 3
PASSING = (412, 502, 504)  # retried like a 429, after a back-off of their own
MAX_RETRY_AFTER = 60.0
SEND_TIMEOUT = 30.0


class SendFailed(Exception):
    """Teams refused a message (after the retries a 429 gets)."""


class Pace:
    """Per-conversation sliding windows: how long to wait before the next send."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}

    def wait(self, conversation_id: str) -> None:
        while True:
            with self._lock:
                now = self._clock()
                sent = self._sent.setdefault(conversation_id, deque())
                while sent and now - sent[0] > WINDOWS[-1][0]:
                    sent.popleft()
                delay = 0.0
                for seconds, limit in WINDOWS:
                    recent = [t for t in sent if now - t < seconds]
                    if len(recent) >= limit:
                        delay = max(delay, seconds - (now - recent[-limit]))
                if delay <= 0:
                    sent.append(now)
                    return
            time.sleep(min(delay, 1.0))


class Sender:
    """Posts and updates card messages from worker threads (the SDK runs on its loop)."""

    def __init__(self, api: Any, loop: LoopThread) -> None:
        self.api = api
        self.loop = loop
        self.pace = Pace()

    def send_card(self, conversation_id: str, service_url: str, text: str, content: Card) -> str:
        """A new message holding one card; returns its activity id."""
        activity = _activity(text, content)
        sent = self._call(
            conversation_id,
            lambda: self.api.conversations.activities_client.create(
                conversation_id, activity, service_url=service_url
            ),
        )
        return str(getattr(sent, "id", "") or "")

    def update_card(
        self, conversation_id: str, service_url: str, activity_id: str, text: str, content: Card
    ) -> None:
        """Replace the card of a message we sent (UX 7: update in place)."""
        activity = _activity(text, content)
        self._call(
            conversation_id,
            lambda: self.api.conversations.activities_client.update(
                conversation_id, activity_id, activity, service_url=service_url
            ),
        )

    def _call(self, conversation_id: str, make: Callable[[], Any]) -> Any:
        for attempt in range(RETRIES_429 + 1):
            self.pace.wait(conversation_id)
            try:
                return self.loop.run(make(), SEND_TIMEOUT)
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                wait = _retry_after(exc.response) if status == 429 else None
                if status in PASSING:
                    wait = (0.25 * 2**attempt) * random.uniform(0.8, 1.2)
                if wait is not None and attempt < RETRIES_429:
                    log.info(
                        "Teams answered HTTP %s to a send; retrying in %.1f s",
                        status,
                        wait,
                        extra={"event": "teams_retry", "status": status, "retry_after": wait},
                    )
                    time.sleep(wait)
                    continue
                log.warning(
                    "Teams refused a message: HTTP %s",
                    status,
                    extra={"event": "teams_send_refused", "status": status},
                )
                raise SendFailed(f"HTTP {status}") from None
        raise SendFailed("throttled")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "1")
    try:
        wait = float(value)
    except ValueError:
        return 1.0
    return None if wait > MAX_RETRY_AFTER else max(wait, 0.0)


def _activity(text: str, content: Card) -> MessageActivityInput:
    """A message with one Adaptive Card; the card was built within Teams' size."""
    if size(content) > MAX_MESSAGE_BYTES:  # a builder's bug, never the user's doing
        raise SendFailed(f"a card of {size(content)} bytes is over Teams' limit")
    card = attachment(content)
    return MessageActivityInput(
        text=text,
        attachments=[Attachment(content_type=card["contentType"], content=card["content"])],
    )
