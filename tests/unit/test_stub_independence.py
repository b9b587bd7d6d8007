"""The stub stands in for an external system: it takes nothing of Service B's but process
plumbing, and the plumbing it shares with B (``provisioning.instrumentation``) is neutral."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STUB = ("equipment_stub", REPO / "stub" / "equipment_stub")
INSTRUMENTATION = ("provisioning.instrumentation", REPO / "platform" / "provisioning" / "instrumentation")

# How a process reads its environment, serves TLS (and bounds its HTTP connections: the
# protocol and RFC 9110's rules that ``serving`` applies), logs, and exports traces and metrics:
# none of it answers a request of the contract, so none of it can hide a drift in Service A's.
PLUMBING_THE_STUB_SHARES = (
    "provisioning.environment", "provisioning.settings", "provisioning.serving", "provisioning.logs",
    "provisioning.instrumentation", "provisioning.http_protocol", "provisioning.http_rules",
)
# Single names of other modules: the error every environment reader raises.
NAMES_THE_STUB_SHARES = ("provisioning.errors.SettingsError",)


def imported_modules(package: tuple[str, Path]) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(file, absolute module name, names taken from it) for every import in a flat package,
    relative ones resolved; no names for ``import module``."""
    name, directory = package
    parts = name.split(".")
    for source in sorted(directory.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                yield from ((source.name, alias.name, ()) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = parts[: len(parts) - node.level + 1] if node.level else []
                yield (source.name, ".".join([*base, *([node.module] if node.module else [])]),
                       tuple(alias.name for alias in node.names))


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def test_the_stub_imports_nothing_of_service_b_but_process_plumbing() -> None:
    taken = [(source, module, names) for source, module, names in imported_modules(STUB)
             if is_within(module, "provisioning")
             and not any(is_within(module, allowed) for allowed in PLUMBING_THE_STUB_SHARES)
             and not (names and all(f"{module}.{name}" in NAMES_THE_STUB_SHARES for name in names))]
    assert taken == []


def test_the_shared_instrumentation_imports_nothing_of_service_b_nor_of_the_stub() -> None:
    taken = [(source, module) for source, module, _ in imported_modules(INSTRUMENTATION)
             if (is_within(module, "provisioning") and not is_within(module, INSTRUMENTATION[0]))
             or is_within(module, "equipment_stub")]
    assert taken == []
