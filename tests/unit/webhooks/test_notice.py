"""The webhooks queue's message: it round-trips, and anything else is InvalidMessage."""

from __future__ import annotations

import pytest

from provisioning.errors import InvalidMessage
from provisioning.webhooks.notice import WebhookNotice, webhook_id

NOTICE = WebhookNotice(webhook_id("6f0d-11"), "6f0d-11", "https://hooks.example/x?y=1", 1700000000.5,
                       b'{"type":"task.completed"}')


def test_a_notice_round_trips_with_its_exact_body() -> None:
    assert WebhookNotice.decode(NOTICE.encode()) == NOTICE


def test_the_webhook_id_is_stable_per_task_and_the_next_attempt_keeps_it() -> None:
    following = NOTICE.next_attempt()
    assert (following.webhook_id, following.attempt, following.body) == ("msg_6f0d11", 2, NOTICE.body)
    assert WebhookNotice.decode(following.encode()).attempt == 2


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b'{"webhookId":"msg_1"}',
    b'{"webhookId":"x1","taskId":"t","url":"https://h/","finalAt":1,"body":"{}"}',
    b'{"webhookId":"msg_1","taskId":"t","url":"","finalAt":1,"body":"{}"}',
    b'{"webhookId":"msg_1","taskId":"t","url":"https://h/","finalAt":"later","body":"{}"}',
    b'{"webhookId":"msg_1","taskId":"t","url":"https://h/","finalAt":1,"body":"{}","attempt":0}',
])
def test_anything_else_is_an_invalid_message(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        WebhookNotice.decode(raw)
