"""What ``loadtest/locustfile.py``'s users build on; the users themselves stay in the locustfile.

    options        the scenarios' options (``LOAD_*``) and ``RunConfig``, resolved per environment
    contract       Service B's paths, messages and bodies; the names of the reported entries
    journey        one task's whole journey: create, follow (polls or long-polls), judge, report
                   (``TaskJourney``)
    webhooks       this process's webhook receiver, and the journey of a task its webhook ends
    stub_schedule  faults at run time through the stub's admin endpoint, and their timeline
    entries        entries of Locust's statistics that are not its own requests (tasks, admin calls)
    shapes         the load shapes (constant, ramp, steady rate, burst)

It imports Locust and the standard library only, never the platform: the compose file's
Locust image mounts ``loadtest/`` alone. The one exception, ``webhooks``, imports the
development kit's receiver when (and only when) the webhook scenario is on.
"""
