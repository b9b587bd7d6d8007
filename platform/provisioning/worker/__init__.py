"""The worker pool: processes that consume tasks, call Service A and publish the outcome."""
