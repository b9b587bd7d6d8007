"""Service B's typed application context: the settings, and the resources of this process."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TypeAlias

from opentelemetry.sdk.trace import TracerProvider
from sanic import Request, Sanic
from sanic.config import Config

from ..messaging import Broker
from ..settings import ApiSettings
from ..store import TaskStore
from ..telemetry.metrics import ApiMetrics
from .guards import InFlight


class ServiceContext:
    """Opened by the ``before_server_start`` listener, closed by ``after_server_stop``."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.metrics = ApiMetrics()
        self.in_flight = InFlight(settings.max_in_flight)
        self.tracer_provider: TracerProvider | None = None
        self._store: TaskStore | None = None
        self._broker: Broker | None = None

    def attach(self, store: TaskStore, broker: Broker) -> None:
        self._store, self._broker = store, broker

    def detach(self) -> tuple[TaskStore | None, Broker | None]:
        store, broker, self._store, self._broker = self._store, self._broker, None, None
        return store, broker

    @property
    def store(self) -> TaskStore:
        if self._store is None:
            raise RuntimeError("the task store is used outside the server's lifetime")
        return self._store

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            raise RuntimeError("the broker is used outside the server's lifetime")
        return self._broker


ServiceApp: TypeAlias = Sanic[Config, ServiceContext]
ServiceRequest: TypeAlias = Request[ServiceApp, SimpleNamespace]
