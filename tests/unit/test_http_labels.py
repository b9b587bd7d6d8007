"""The HTTP instruments' labels and span names stay bounded whatever method a client invents
(OpenTelemetry's HTTP semantic conventions: ``_OTHER``, and ``HTTP`` as the span's method)."""

from __future__ import annotations

import pytest

from provisioning.instrumentation.sanic_http import (
    KNOWN_METHODS,
    OTHER_METHOD,
    UNMATCHED_ROUTE,
    method_label,
    span_name,
)


@pytest.mark.parametrize("method", sorted(KNOWN_METHODS))
def test_the_nine_methods_of_rfc_9110_and_patch_are_their_own_label(method: str) -> None:
    assert method_label(method) == method


@pytest.mark.parametrize("method", ["get", "Post", "NONE", "PROPFIND", "SECRET-TOKEN-1234", "X" * 7000, ""])
def test_any_other_method_is_other_and_never_itself(method: str) -> None:
    assert method_label(method) == OTHER_METHOD


def test_the_labels_of_any_number_of_invented_methods_are_at_most_ten() -> None:
    invented = {f"M{n:031d}" for n in range(1000)}
    assert {method_label(m) for m in invented | KNOWN_METHODS} == KNOWN_METHODS | {OTHER_METHOD}


def test_a_span_is_named_for_its_method_and_route_and_http_for_an_invented_method() -> None:
    assert span_name("POST", "/api/v1/equipment/cpe/<equipment_id>") == (
        "POST /api/v1/equipment/cpe/<equipment_id>")
    assert span_name(method_label("BREW"), UNMATCHED_ROUTE) == "HTTP unmatched"
