"""Schemathesis against the served OpenAPI spec: generated requests (valid and invalid) never get a 5xx.

Bounded: a few examples per operation and generation mode (positive: bodies the schema allows;
negative: bodies it forbids), on tiny models, for a classifier, a masked LM and a causal LM.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from domainlm.serve import ServeConfig
from domainlm.serve.app import create_app
from domainlm.serve.engine import load_engine
from tests.tiny_models import clf_dir, gpt_dir, labelled, mlm_dir  # noqa: F401  (fixtures)

CFG = ServeConfig(max_texts=8, max_chars=300, max_new_tokens=4, request_timeout_s=20)
EXAMPLES = 8


@pytest.mark.parametrize("model", ["clf", "mlm", "gpt"])
def test_generated_requests_never_get_a_server_error(model, request):
    folder = request.getfixturevalue(f"{model}_dir")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(load_engine(folder), CFG))
    seen: list[tuple[str, str, int]] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 4
    for op in operations:
        # a GET without parameters has no invalid form to generate: negative mode is for bodies
        for mode in GenerationMode if op.method.upper() == "POST" else [GenerationMode.POSITIVE]:
            fuzz(op, mode, seen)()
    assert len(seen) >= 3 * len(operations)
    assert any(code == 200 for path, _, code in seen if path != "/metrics"), "valid requests succeed"
    assert any(400 <= code < 500 for _, mode, code in seen if mode == "negative"), "invalid ones are refused"


def fuzz(op, mode, seen: list):
    """A Hypothesis test sending EXAMPLES generated requests to one operation in one mode."""

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call()
        seen.append((op.path, mode.value, response.status_code))
        assert response.status_code < 500, (op.path, case.body, response.text[:300])

    return check
