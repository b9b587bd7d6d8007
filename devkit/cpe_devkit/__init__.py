"""The development kit: what ``task dev``, the tests, the benchmark and Locust use to start a
throwaway platform and talk to it. Never installed in the wheel or the image.

    stack          the three components as child processes (``Stack``, ``running_stack``)
    dev            ``task dev``: the stack in the foreground, stopped on any signal
    processes      background processes tied to their launcher, bounded waits, HTTP probes
    ports          free loopback ports
    environment    the one builder of a throwaway run's environment (names, ports, defaults)
    run_data       deleting a run's keys and queues, and sweeping what a session left behind
    client         a client of Service B that speaks the contract
    rabbit_node    a RabbitMQ node of one's own, beside the machine's
    redis_server   a redis-server of one's own, beside the machine's
    probes         queue depths, dead letters, Prometheus scrapes
"""
