"""Benchmark of the platform on this machine: it reports figures, it asserts nothing.

``task bench`` (``PYTHONPATH=devkit:loadtest .venv/bin/python -m bench``) starts the platform
locally through ``cpe_devkit.stack`` — the stub, Service B and the worker pool as child
processes, with Redis keys and queue names of its own run (``bench-<hex>-...``) that are
deleted afterwards — and drives it from several aiohttp client processes (HTTPS, keep-alive,
certificates verified against the project's CA). Load generator, platform, Redis and RabbitMQ
all share the machine, so the figures are for the whole box, and the CPU the benchmark itself
and other processes used is recorded beside them.

Phases (``--phases``, default all but ``soak``):

    api    create-task and status-read throughput and latency at fixed client concurrency,
           Service B and the stub only (tasks wait in the queue and are deleted afterwards)
    held   N tasks with the stub's real delay submitted as fast as the API takes them, for each N
           in ``--held``: submission rate; completed / failed / lost; completion overhead
           (finished_at - created_at - delay, from the task store's records) p50/p99/max
    rate   R tasks/s for ``--rate-seconds`` (open loop), for each R in ``--rates``: nothing
           lost, create p99 < 100 ms and overhead p99 < 1 s is a pass
    notice N tasks held (``--notice-held``, stub delay ``--notice-delay``), each followed to its
           end by its client in each way of ``--notice-modes``: polling every second,
           long-poll, Server-Sent Events, webhooks (a platform per mode and N): Service B CPU
           per task, completion-notice latency (received - the record's finished_at)
           p50/p99/max, Service B memory per waiting client, tasks lost; issue 10's targets
           (long-poll CPU <= half of polling's, p99 < 100 ms long-poll/SSE, < 500 ms webhooks,
           0 lost) printed as pass/fail
    soak   ``--soak-rate`` tasks/s (30) for ``--soak-minutes`` (30; not in the default list), stub
           delay ``--soak-delay`` (5 s), every task's client polling until it is final; every
           ``--soak-sample-seconds`` (30) each platform process's RSS and open files, Redis's
           used memory and keys (a redis-server of the run's own) and every queue's depth:
           start / middle / end and the least-squares slope per hour after the warm-up, and
           whether each stays flat; tasks completed / failed / lost and the throughput
Resources, measured during held and rate: CPU seconds and peak RSS of every process of the
platform (and of Redis, RabbitMQ and the clients) per 1,000 tasks, and memory per in-flight
task of the worker pool and the stub.

Results: a table on stdout, one ``BENCH_JSON {...}`` line, ``reports/bench-<time>/`` (JSON,
Markdown, logs) and, unless ``--quick``, the generated part of ``loadtest/RESULTS.md`` (the
soak's in a block of its own, so that a soak alone leaves the other phases' figures there).

One job per module:

    __main__   the command: options in, the report out
    options    the command line and its ``BENCH_*`` variables
    launch     the platform of one run, through the development kit
    machine    the machine's facts, the services' versions, the open-files limit
    jobs       what one client process is asked to do, and what it answers (plain data)
    clients    the client processes: closed loop, submission, open loop, submission with waiters
    waiters    one waiting client: polling, long-poll, an event stream (and its parser)
    progress   the client processes' counts, written now and then, summed into progress lines
    outcomes   following the submitted tasks through the task store until they are final
    sampling   CPU, RSS and open files of process trees, from /proc
    profiling  py-spy profiles of the platform's processes, and their summaries
    figures    percentiles, rates, CPU per request and per task, memory per task (pure)
    phases     api, held, rate, notice and soak: the runs and their rows
    notice     one notice run: its platform, clients and webhook receiver, and its row
    notice_figures  the notice phase's figures and the issue's targets (pure)
    soak       the soak run: its redis-server, platform, clients and samples, and its row
    soak_figures  a series' start, middle, end and slope per hour, and whether it is flat (pure)
    report     the Markdown tables, the RESULTS.md block and the ``BENCH_JSON`` line (pure)
"""
