"""Names shared by every process: Redis keys, queues, message headers. Constants only."""

DEFAULT_KEY_PREFIX = "provisioning:"
# Every key of one device shares the hash tag {equipment id} (a Redis Cluster slot), so one
# script can touch a task's record together with its device's keys (``store``).
TASK_KEY = "task:"  # {prefix}task:{equipment id}:{uuid}, a task's record
TASK_DEVICE_KEY = "task-device:"  # {prefix}task-device:{uuid}, the task's equipment id (an index)
EQUIPMENT_KEY = "equipment:"  # {prefix}equipment:{equipment id}:tasks|active|waiting
IDEMPOTENCY_KEY = "idempotency:"
LEASE_KEY = "lease:"  # {prefix}lease:{equipment id}, held while a worker calls Service A
EVENTS_KEY = "events:"  # {prefix}events:{equipment id}:{uuid}, a task's event log (a stream)
EVENTS_CHANNEL = "task-events"  # {prefix}task-events: pub/sub, "{task id} {event type}"

DEFAULT_TASKS_QUEUE = "tasks_queue"
DEFAULT_RESULTS_QUEUE = "results_queue"
DEFAULT_WEBHOOKS_QUEUE = "webhooks_queue"
DELAY_SUFFIX = ".delay."  # {webhooks queue}.delay.{ms}ms holds deliveries waiting to retry
DEAD_LETTER_SUFFIX = ".dead"
PARKING_SUFFIX = ".waiting."  # serialize mode: {tasks queue}.waiting.{task id} holds a waiting task

API_APP_NAME = "service_b"
CONTENT_TYPE_JSON = "application/json"
