"""What a waiting client reads: the classic final answers, and Server-Sent Events as the
WHATWG rules split them."""

from __future__ import annotations

import json

import pytest

from bench.waiters import SseParser, final_message


@pytest.mark.parametrize(("status", "answer", "expected"), [
    (200, {"code": 200, "message": "Completed"}, "Completed"),
    (200, {"code": 410, "message": "Task was cancelled"}, "Task was cancelled"),
    (500, {"code": 500, "message": "Internal provisioning exception"}, "Internal provisioning exception"),
    (404, {"code": 404, "message": "The requested equipment is not found"}, "The requested equipment is not found"),
    (200, {"code": 204, "message": "Task is still running"}, None),
    (503, {"code": 503, "message": "Service is overloaded, retry later"}, None),
])
def test_only_a_final_answer_of_the_contract_ends_the_wait(status: int, answer: dict[str, object],
                                                             expected: str | None) -> None:
    assert final_message(status, json.dumps(answer).encode()) == expected


def test_a_body_that_is_not_json_does_not_end_the_wait() -> None:
    assert final_message(200, b"<html>") is None


def test_events_are_dispatched_at_a_blank_line_with_their_name_data_and_id() -> None:
    parser = SseParser()
    events = parser.feed(["event: running\n", 'data: {"taskId": "t"}\n', "id: 1-0\n", "\n",
                          "event: completed\r\n", "data: {\n", "data: }\n", "id: 2-0\n", "\n"])
    assert [(event.event, event.data, event.id) for event in events] == [
        ("running", '{"taskId": "t"}', "1-0"), ("completed", "{\n}", "2-0")]
    assert parser.last_event_id == "2-0"


def test_keep_alive_comments_make_no_event_and_an_event_may_span_two_reads() -> None:
    parser = SseParser()
    assert parser.feed([": keep-alive\n", "\n", "event: attempt\n"]) == []
    [event] = parser.feed(["data: {}\n", "\n"])
    assert (event.event, event.data, event.id) == ("attempt", "{}", None)


def test_an_event_without_a_name_is_a_message() -> None:
    [event] = SseParser().feed(["data: x\n", "\n"])
    assert event.event == "message"
