"""Asynchronous CPE provisioning: Service B (``provisioning.api``) and the worker pool
(``provisioning.worker``), sharing the task store (Redis) and the broker (RabbitMQ)."""

__version__ = "0.1.0"
