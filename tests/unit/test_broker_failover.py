"""The broker list of a process: shuffled once, walked on failures, round and round; and the
supervisor that follows it, driven by a fake connector typed as the real one."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import aiormq.abc
from aiormq.exceptions import ChannelPreconditionFailed

from provisioning.messaging.addresses import BrokerAddresses, describe
from provisioning.messaging.blocking import Blocking
from provisioning.messaging.broker import Broker, Connector
from provisioning.messaging.topology import GROUP_SIZE, created_group_size, topology
from provisioning.settings import BrokerSettings

URLS = [f"amqp://user:secret@node-{index}:{5672 + index}/" for index in range(3)]


def settings(urls: list[str]) -> BrokerSettings:
    return BrokerSettings(url=urls[0], urls=tuple(urls), tasks_queue="t", results_queue="r",
                          delivery_limit=5, dead_letter_ttl_seconds=60, max_message_bytes=1024,
                          publish_timeout_seconds=1.0, reconnect_initial_seconds=0.02,
                          reconnect_max_seconds=0.04)


def test_each_process_shuffles_the_list_once_and_keeps_every_broker() -> None:
    orders = {tuple(BrokerAddresses(URLS, rng=random.Random(seed)).urls) for seed in range(30)}
    assert len(orders) > 1, "the order should differ between processes"
    assert all(sorted(order) == sorted(URLS) for order in orders)
    addresses = BrokerAddresses(URLS, rng=random.Random(1))
    assert addresses.current == addresses.urls[0]


def test_a_failed_attempt_moves_to_the_next_broker_and_wraps_around() -> None:
    addresses = BrokerAddresses(URLS, rng=random.Random(2))
    order = list(addresses.urls)
    seen = [addresses.current]
    for _ in range(2 * len(URLS)):
        addresses.failed(was_connected=False)
        seen.append(addresses.current)
    assert seen == order * 2 + order[:1]


def test_the_backoff_pause_comes_after_a_whole_round_not_between_its_brokers() -> None:
    addresses = BrokerAddresses(URLS, rng=random.Random(3))
    assert [addresses.failed(was_connected=False) for _ in range(6)] == [False, False, True] * 2


def test_a_lost_connection_moves_on_and_pauses_once_and_starts_a_new_round() -> None:
    addresses = BrokerAddresses(URLS, rng=random.Random(4))
    addresses.failed(was_connected=False)
    addresses.connected()
    before = addresses.current
    assert addresses.failed(was_connected=True) is True
    assert addresses.current != before
    assert [addresses.failed(was_connected=False) for _ in range(3)] == [False, False, True]


def test_one_broker_pauses_before_every_attempt_as_before() -> None:
    addresses = BrokerAddresses(URLS[:1])
    assert [addresses.failed(was_connected=False) for _ in range(3)] == [True, True, True]
    assert addresses.failed(was_connected=True) is True
    assert addresses.current == URLS[0]


def test_a_broker_is_named_by_host_and_port_never_by_its_credentials() -> None:
    assert describe("amqp://user:secret@rabbit-1:5673/vhost") == "rabbit-1:5673"
    assert describe("amqps://user:secret@rabbit-2/") == "rabbit-2:5671"
    assert describe("amqp://u:p@[::1]:5672/") == "[::1]:5672"


class RefusingConnector:
    """Stands for ``blocking.connect``; refuses every broker, recording which it was asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.enough = asyncio.Event()

    async def __call__(self, url: str, *, client_properties: dict[str, Any], blocking: Blocking
                       ) -> aiormq.abc.AbstractConnection:
        self.asked.append(url)
        if len(self.asked) >= 7:
            self.enough.set()
        raise ConnectionRefusedError(f"{url} refuses")


async def test_the_supervisor_walks_its_shuffled_list_round_and_round() -> None:
    connector = RefusingConnector()
    typed: Connector = connector  # the fake has the real interface's shape
    broker = Broker(settings(URLS), name="test", connect=typed, rng=random.Random(5))
    order = broker.addresses
    await broker.start()
    try:
        await asyncio.wait_for(connector.enough.wait(), 5)
    finally:
        await broker.close()
    assert connector.asked[:7] == (order * 3)[:7]
    assert not broker.connected and broker.node is None


class SilentConnector:
    """Stands for ``blocking.connect`` on a network that carries nothing: the handshake never
    ends (aiormq's own has no bound). Records each broker it was asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.enough = asyncio.Event()

    async def __call__(self, url: str, *, client_properties: dict[str, Any], blocking: Blocking
                       ) -> aiormq.abc.AbstractConnection:
        self.asked.append(url)
        if len(self.asked) >= 3:
            self.enough.set()
        await asyncio.Event().wait()
        raise AssertionError("never reached")


async def test_a_connection_attempt_that_hears_nothing_is_given_up_for_the_next_broker() -> None:
    connector = SilentConnector()
    typed: Connector = connector
    bounded = dataclasses.replace(settings(URLS), connect_timeout_seconds=0.05)
    broker = Broker(bounded, name="test", connect=typed, rng=random.Random(6))
    await broker.start()
    try:
        await asyncio.wait_for(connector.enough.wait(), 5)
    finally:
        await broker.close()
    assert connector.asked[:3] == broker.addresses[:3]
    assert not broker.connected


def test_processes_start_at_other_brokers_and_one_broker_stays_the_one() -> None:
    first = {Broker(settings(URLS), name="t", rng=random.Random(s)).addresses[0] for s in range(20)}
    assert len(first) > 1
    assert Broker(settings(URLS[:1]), name="t").addresses == URLS[:1]


def test_every_quorum_queue_asks_for_the_configured_group_size() -> None:
    queues = topology(settings(URLS))
    assert queues and all(arguments["x-queue-type"] == "quorum" for _, arguments in queues)
    assert all(arguments[GROUP_SIZE] == 3 for _, arguments in queues)


def test_a_group_size_refusal_names_the_size_the_queue_was_created_with() -> None:
    refused = "PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'q' in vhost '/': "
    assert created_group_size(ChannelPreconditionFailed(refused + "received the value '3' of type 'byte' but current is none")) == (True, None)
    assert created_group_size(ChannelPreconditionFailed(refused + "received '3' but current is '2'")) == (True, 2)
    other = "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received '3' but current is '2'"
    assert created_group_size(ChannelPreconditionFailed(other)) == (False, None)
