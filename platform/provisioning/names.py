"""Names shared by every process: Redis keys, queues, message headers. Constants only."""

DEFAULT_KEY_PREFIX = "provisioning:"
TASK_KEY = "task:"
EQUIPMENT_KEY = "equipment:"  # per-device index and state (history, the unfinished task)
IDEMPOTENCY_KEY = "idempotency:"
LEASE_KEY = "lease:"  # per-device lease held while a worker calls Service A
EVENTS_KEY = "events:"  # {prefix}events:{uuid}, a task's event log (a stream)
EVENTS_CHANNEL = "task-events"  # {prefix}task-events: pub/sub, "{task id} {event type}"

DEFAULT_TASKS_QUEUE = "tasks_queue"
DEFAULT_RESULTS_QUEUE = "results_queue"
DEFAULT_WEBHOOKS_QUEUE = "webhooks_queue"
DELAY_SUFFIX = ".delay."  # {webhooks queue}.delay.{ms}ms holds deliveries waiting to retry
DEAD_LETTER_SUFFIX = ".dead"
PARKING_SUFFIX = ".waiting."  # serialize mode: {tasks queue}.waiting.{task id} holds a waiting task

API_APP_NAME = "service_b"
CONTENT_TYPE_JSON = "application/json"
