"""Summaries of py-spy's raw stacks: self time by package, the project's functions by
inclusive time."""

from __future__ import annotations

import pytest

from bench.profiling import frame_package, summarize_stacks

SITE = "/work/.venv/lib/python3.11/site-packages"


@pytest.mark.parametrize(("frame", "package"), [
    (f"write (/x{SITE}/aiormq/connection.py:120)", "aiormq"),
    (f"run (/x{SITE}/uvloop/__init__.py:5)", "uvloop"),
    ("handle (/work/main/platform/provisioning/worker/consumer.py:88)", "provisioning.worker"),
    ("get (/work/main/platform/provisioning/store.py:160)", "provisioning.store"),
    ("answer (/work/main/stub/equipment_stub/app.py:40)", "equipment_stub.app"),
    ("_run_once (/usr/lib/python3.11/asyncio/base_events.py:1900)", "stdlib asyncio"),
    ("<module> (<frozen runpy>:88)", "python"),
    ("_handler (request.py:12)", "sanic (generated code)"),
])
def test_a_frame_belongs_to_the_package_of_its_file(frame: str, package: str) -> None:
    assert frame_package(frame) == package


def test_self_time_goes_to_the_sampled_frame_and_inclusive_time_to_every_project_frame() -> None:
    consumer = "handle (/w/platform/provisioning/worker/consumer.py:88)"
    store = "get (/w/platform/provisioning/store.py:160)"
    redis = f"execute ({SITE}/redis/client.py:10)"
    lines = [
        f"{consumer};{store};{redis} 60",
        f"{consumer} 30",
        f"run ({SITE}/uvloop/__init__.py:5) 10",
        "not a stack line",
    ]
    summary = summarize_stacks(lines)
    assert summary["samples"] == 100
    assert summary["self_percent_by_package"] == {"redis": 60.0, "provisioning.worker": 30.0, "uvloop": 10.0}
    assert summary["inclusive_percent_project_functions"] == {"handle (consumer.py:88)": 90.0,
                                                              "get (store.py:160)": 60.0}


def test_no_samples_summarize_to_nothing() -> None:
    assert summarize_stacks([]) == {"samples": 0, "self_percent_by_package": {},
                                    "inclusive_percent_project_functions": {}}
