"""Completion webhooks: a create may carry ``callbackUrl``; the task's final status is POSTed
there, signed after the Standard Webhooks specification, at least once, through RabbitMQ.

- ``callback_url``: what a ``callbackUrl`` may be (the SSRF guard's static half);
- ``notice``: the message on the webhooks queue;
- ``outbox``: queues a final task's webhook, for whoever made or saw the final write;
- the delivering half (signing, the address guard, retries through delay queues) runs in the
  worker pool.
"""
