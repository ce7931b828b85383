"""Schema fuzzing of `lifelong serve` with schemathesis: requests generated from the server's own
OpenAPI schema (valid and invalid bodies, odd strings, out-of-range numbers), every operation,
with a tenant's key. The server must never answer 5xx nor leak a traceback."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from lifelong.mind import Mind
from lifelong.serve.app import create_app
from lifelong.serve.keys import KeyRing



def test_no_request_the_schema_allows_or_breaks_gets_a_server_error(tmp_path: Path, tiny_lm, embedder) -> None:
    """Every operation, 25 generated requests each (schemathesis' pytest plugin does not load
    under this pytest, so its strategies are driven with hypothesis directly)."""
    root = tmp_path / "server"
    Mind.init(root, embedder=embedder, language_model=tiny_lm).close()
    ring = KeyRing(root)
    key = {"Authorization": f"Bearer {ring.create('fuzz')}"}
    ring.close()
    app = create_app(root, language_model=tiny_lm, embedder=embedder, results=root / "no-results")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/v1/sleep":  # a real sleep per example is minutes of CPU; test_serve.py covers it
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  phases=[Phase.explicit, Phase.generate])  # no shrinking: a failure is reported as found
        def call(case) -> None:  # noqa: ANN001 - schemathesis' Case
            try:
                response = case.call(headers=key, timeout=300)
            except Exception as exc:  # noqa: BLE001 - the test client re-raises what became a 500
                failures.append(f"{case.method} {case.formatted_path} {case.body!r} raised {exc!r}"[:400])
                return
            if response.status_code >= 500 or "Traceback" in response.text:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")

        call()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert len(checked) >= 10, checked
    assert failures == [], "\n".join(failures[:5])
