"""A server process freezes what it holds at start and makes the collector's passes rarer."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from provisioning.collector import THRESHOLDS


def test_after_tuning_the_start_up_objects_are_frozen_and_the_thresholds_raised() -> None:
    # In a child process: the test runner's collector is its own.
    script = textwrap.dedent("""
        import gc
        from provisioning.collector import tune_collector
        assert gc.get_freeze_count() == 0
        tune_collector()
        print(gc.get_freeze_count() > 0, *gc.get_threshold())
    """)
    frozen, *thresholds = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                         text=True, check=True).stdout.split()
    assert frozen == "True"
    assert tuple(map(int, thresholds)) == THRESHOLDS


def test_cycles_are_still_collected_after_tuning() -> None:
    script = textwrap.dedent("""
        import gc, weakref
        from provisioning.collector import tune_collector
        tune_collector()
        class Node: pass
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        print(gone() is None)
    """)
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip() == "True"
