"""The environment variables the platform's code reads, found in its settings sources.

Shared by the checks of every deployment description (compose.yaml, the Kubernetes manifests):
a variable they set that no code reads is a typo or a stale name.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Where the components read their settings: the typed readers of provisioning.environment and
# the readers that take the variable's name (the address lists, the metrics port) ...
SETTINGS_SOURCES = (
    ROOT / "platform" / "provisioning" / "settings.py",
    ROOT / "stub" / "equipment_stub" / "settings.py",
)
ENV_READER_CALL = re.compile(
    r"""\b(?:env\.(?:text|integer|number|ratio|words|flag|optional_text)|_addresses"""
    r"""|MetricsSettings\.from_env)\("""
    r"""\s*(?:env,\s*)?["']([A-Z][A-Z0-9_]*)["']"""
)
# ... and the certs one-shot, which reads os.environ directly.
CERTS_SOURCE = ROOT / "platform" / "provisioning" / "certs.py"
OS_ENVIRON_GET = re.compile(r"""os\.environ\.get\(\s*["']([A-Z][A-Z0-9_]*)["']""")

# Variables a Python service may get although our code does not read them, with the reason.
NON_CODE_VARIABLE_PREFIXES = {
    "OTEL_": "read by the OpenTelemetry SDK itself (exporter endpoint, service name, ...)",
}


def variables_the_code_reads() -> set[str]:
    names: set[str] = set()
    for source in SETTINGS_SOURCES:
        found = set(ENV_READER_CALL.findall(source.read_text(encoding="utf-8")))
        assert found, f"no env.<reader>(NAME, ...) calls found in {source}; has the API changed?"
        names |= found
    names |= set(OS_ENVIRON_GET.findall(CERTS_SOURCE.read_text(encoding="utf-8")))
    return names


def read_by_the_code_or_its_libraries(variable: str, known: set[str]) -> bool:
    """True for a variable our settings read, or one a library reads (NON_CODE_VARIABLE_PREFIXES)."""
    return variable in known or variable.startswith(tuple(NON_CODE_VARIABLE_PREFIXES))
