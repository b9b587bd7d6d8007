"""Names shared by every process: Redis keys, queues, message headers. Constants only."""

DEFAULT_KEY_PREFIX = "provisioning:"
TASK_KEY = "task:"

DEFAULT_TASKS_QUEUE = "tasks_queue"
DEFAULT_RESULTS_QUEUE = "results_queue"
DEAD_LETTER_SUFFIX = ".dead"

API_APP_NAME = "service_b"
CONTENT_TYPE_JSON = "application/json"
