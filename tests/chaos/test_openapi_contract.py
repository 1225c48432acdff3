"""openapi/chaos.yaml against the code: ranges equal the validation constants, and every
documented status of every operation is produced by a real request whose body fits the schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
import yaml
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from shared.chaos import params as P
from shared.chaos.errors import StoreUnavailable, Unauthenticated
from shared.chaos.experiments import Experiment, MemoryExperimentStore
from shared.chaos.params import ExperimentSpec
from shared.chaos.runtime import use_runtime
from shared.resilience.clock import FakeClock
from tests import services
from tests.chaos.servers import REPO, EchoUpstream

DOC: dict[str, Any] = yaml.safe_load((REPO / "openapi" / "chaos.yaml").read_text())
COMPONENTS = DOC["components"]
METHODS = ("get", "post", "put", "patch", "delete")


def resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow one local ``$ref`` (``#/components/...``)."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return resolve(target)


def query_param(name: str) -> Mapping[str, Any]:
    return resolve(COMPONENTS["parameters"][name])["schema"]


def test_document_is_valid_yaml_with_every_route() -> None:
    assert DOC["openapi"].startswith("3.1")
    assert set(DOC["paths"]) == {
        "/chaos_delay",
        "/chaos_proxy",
        "/chaos_proxy/_experiments",
        "/chaos_proxy/_experiments/{id}",
        "/chaos_proxy/{upstream}/{path}",
    }
    for schema in COMPONENTS["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


# -- ranges ---------------------------------------------------------------------------------------


def test_query_parameters_match_the_constants() -> None:
    assert query_param("p") == {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": P.DEFAULT_P,
    }
    d = query_param("d")
    assert (d["minimum"], d["maximum"], d["default"]) == (0, P.DEFAULT_MAX_DELAY_MS, P.DEFAULT_D_MS)
    status = query_param("status")
    assert tuple(status["enum"]) == P.INJECTABLE_STATUSES
    assert status["default"] == P.DEFAULT_STATUS
    assert query_param("seed")["maximum"] == P.MAX_SEED
    retry = query_param("retry_after")
    assert (retry["maximum"], retry["default"]) == (P.MAX_RETRY_AFTER_S, P.DEFAULT_RETRY_AFTER_S)
    mode = query_param("mode")
    assert (tuple(mode["enum"]), mode["default"]) == (P.MODES, P.DEFAULT_MODE)
    slow = query_param("slow_ms")
    assert (slow["maximum"], slow["default"]) == (P.DEFAULT_MAX_DELAY_MS, P.DEFAULT_SLOW_MS)
    limit = query_param("limit")
    assert (limit["minimum"], limit["maximum"]) == (1, P.MAX_LIST_LIMIT)
    assert limit["default"] == P.DEFAULT_LIST_LIMIT


def test_operation_parameters_and_bodies_list_exactly_the_accepted_names() -> None:
    paths = DOC["paths"]

    def names(op: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(resolve(p)["name"] for p in op.get("parameters", []))

    assert names(paths["/chaos_delay"]["get"]) == P.DELAY_PARAMETERS
    assert names(paths["/chaos_proxy"]["get"]) == P.PROXY_PARAMETERS
    assert names(paths["/chaos_proxy/_experiments"]["get"]) == P.LIST_PARAMETERS
    schemas = COMPONENTS["schemas"]
    assert tuple(schemas["DelayRequest"]["properties"]) == P.DELAY_PARAMETERS
    assert tuple(schemas["ModeRequest"]["properties"]) == P.PROXY_PARAMETERS
    experiment = schemas["ExperimentRequest"]
    assert tuple(experiment["properties"]) == P.EXPERIMENT_FIELDS
    assert tuple(experiment["properties"]["mode"]["enum"]) == P.EXPERIMENT_MODES
    duration = experiment["properties"]["duration_s"]
    assert (duration["minimum"], duration["maximum"]) == (P.MIN_EXPERIMENT_S, P.MAX_EXPERIMENT_S)
    for name in P.DELAY_PARAMETERS:
        body_schema = dict(schemas["DelayRequest"]["properties"][name])
        query_schema = {k: v for k, v in query_param(name).items() if k != "default"}
        assert body_schema == query_schema, name


def _bounds() -> Iterator[tuple[str, str, str, str]]:
    """(parameter, lowest valid, highest valid, code's ``allowed``) from the document."""
    for name in ("d", "seed", "retry_after", "slow_ms", "limit"):
        s = query_param(name)
        yield name, str(s["minimum"]), str(s["maximum"]), f"{s['minimum']}..{s['maximum']}"


@pytest.mark.parametrize(("name", "low", "high", "allowed"), list(_bounds()))
def test_documented_bounds_are_the_enforced_bounds(
    name: str, low: str, high: str, allowed: str
) -> None:
    parse: Callable[[dict[str, object]], object] = {
        "d": lambda v: P.parse_delay_params(v, max_delay_ms=P.DEFAULT_MAX_DELAY_MS),
        "seed": lambda v: P.parse_delay_params(v, max_delay_ms=P.DEFAULT_MAX_DELAY_MS),
        "retry_after": lambda v: P.parse_delay_params(v, max_delay_ms=P.DEFAULT_MAX_DELAY_MS),
        "slow_ms": lambda v: P.parse_proxy_params(v, max_delay_ms=P.DEFAULT_MAX_DELAY_MS),
        "limit": P.parse_list_limit,
    }[name]
    parse({name: low})
    parse({name: high})
    for outside in (str(int(low) - 1), str(int(high) + 1)):
        with pytest.raises(P.InvalidParameter) as info:
            parse({name: outside})
        assert info.value.allowed == allowed


def test_documented_enums_are_the_enforced_enums() -> None:
    with pytest.raises(P.InvalidParameter) as info:
        P.parse_delay_params({"status": "418"}, max_delay_ms=1)
    assert info.value.allowed == "|".join(map(str, query_param("status")["enum"]))
    with pytest.raises(P.InvalidParameter) as info:
        P.parse_proxy_params({"mode": "x"}, max_delay_ms=1)
    assert info.value.allowed == "|".join(query_param("mode")["enum"])


# -- every documented status, produced and validated ----------------------------------------------


def _verifier(token: str) -> Mapping[str, Any]:
    if token not in ("owner", "viewer"):
        raise Unauthenticated("invalid ID token: InvalidIdTokenError")
    return {"uid": f"uid-{token}", "role": token}


class FailingStore(MemoryExperimentStore):
    def _fail(self) -> Any:
        raise StoreUnavailable("experiments store failed: ServiceUnavailable: emulator down")

    def start(self, spec: ExperimentSpec, *, now: float, created_by: str = "") -> Experiment:
        return self._fail()  # type: ignore[no-any-return]

    def list(self, *, limit: int) -> list[Experiment]:
        return self._fail()  # type: ignore[no-any-return]

    def get(self, experiment_id: str) -> Experiment:
        return self._fail()  # type: ignore[no-any-return]

    def stop(self, experiment_id: str, *, now: float) -> Experiment:
        return self._fail()  # type: ignore[no-any-return]

    def stop_matching(
        self, *, upstream: str | None, name: str | None, now: float
    ) -> tuple[Experiment, ...]:
        return self._fail()  # type: ignore[no-any-return]


@dataclass
class Ctx:
    delay: FlaskClient
    proxy: FlaskClient
    env: pytest.MonkeyPatch
    store: MemoryExperimentStore
    clock: FakeClock

    def firebase(self) -> None:
        self.env.setenv("CHAOS_AUTH", "firebase")

    def off(self) -> None:
        self.env.setenv("CHAOS_ENABLED", "false")

    def started(self) -> str:
        return self.store.start(ExperimentSpec("echo", "error", 60), now=self.clock.time()).id

    def failing(self) -> None:
        self.store = FailingStore()


Example = Callable[[Ctx], TestResponse]
EXP = "/chaos_proxy/_experiments"
START = {"upstream": "echo", "mode": "error", "duration_s": 60}


def _delay(method: str) -> dict[str, Example]:
    def call(query: str) -> Example:
        def run(c: Ctx) -> TestResponse:
            if method == "get":
                return c.delay.get(f"/chaos_delay?{query}")
            pairs = dict(item.split("=") for item in query.split("&"))
            return c.delay.post("/chaos_delay", json=pairs)

        return run

    def with_setup(setup: Callable[[Ctx], None], then: Example) -> Example:
        def run(c: Ctx) -> TestResponse:
            setup(c)
            return then(c)

        return run

    examples: dict[str, Example] = {
        "200": call("p=0&d=1"),
        "400": call("p=abc"),
        "401": with_setup(Ctx.firebase, call("p=0")),
        "403": with_setup(Ctx.off, call("p=0")),
    }
    for status in P.INJECTABLE_STATUSES:
        examples[str(status)] = call(f"p=1&d=1&status={status}")
    return examples


def _mode(method: str) -> dict[str, Example]:
    def call(query: str) -> Example:
        def run(c: Ctx) -> TestResponse:
            if method == "get":
                return c.proxy.get(f"/chaos_proxy?{query}")
            return c.proxy.post("/chaos_proxy", json=dict(i.split("=") for i in query.split("&")))

        return run

    def misconfigured(c: Ctx) -> TestResponse:
        c.env.setenv("CHAOS_MAX_DELAY_MS", "plenty")
        return call("mode=ok")(c)

    def auth(c: Ctx) -> TestResponse:
        c.firebase()
        return call("mode=ok")(c)

    def off(c: Ctx) -> TestResponse:
        c.off()
        return call("mode=error")(c)

    def too_many_drops(c: Ctx) -> TestResponse:
        c.env.setenv("CHAOS_MAX_HELD_DROPS", "0")
        return call("mode=drop")(c)

    return {
        "200": call("mode=slow&slow_ms=5"),
        "400": call("mode=sideways"),
        "401": auth,
        "403": off,
        "500": misconfigured,
        "502": call("mode=error"),
        "503": too_many_drops,
        "504": call("mode=drop"),
    }


def _forward(method: str) -> dict[str, Example]:
    def call(path: str) -> Example:
        return lambda c: c.proxy.open(path, method=method.upper(), data=b"{}")

    def timeout(c: Ctx) -> TestResponse:
        c.env.setenv("CHAOS_UPSTREAM_TIMEOUT_S", "0.2")
        return call("/chaos_proxy/echo/sleep/1000")(c)

    return {
        "default": call("/chaos_proxy/echo/x"),
        "400": call("/chaos_proxy/echo/a/../b"),
        "404": call("/chaos_proxy/unknown/x"),
        "502": call("/chaos_proxy/down/x"),
        "504": timeout,
    }


def _token(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {role}"}


def _experiments() -> dict[tuple[str, str, str], Example]:
    def as_viewer(call: Callable[[Ctx, dict[str, str]], TestResponse]) -> Example:
        def run(c: Ctx) -> TestResponse:
            c.firebase()
            return call(c, _token("viewer"))

        return run

    def anonymous(call: Callable[[Ctx, dict[str, str]], TestResponse]) -> Example:
        def run(c: Ctx) -> TestResponse:
            c.firebase()
            return call(c, {})

        return run

    def failing(call: Callable[[Ctx, dict[str, str]], TestResponse]) -> Example:
        # The failing store itself is installed by the test, keyed on status 503.
        return lambda c: call(c, {})

    def as_owner(call: Callable[[Ctx, dict[str, str]], TestResponse]) -> Example:
        def run(c: Ctx) -> TestResponse:
            c.firebase()
            return call(c, _token("owner"))

        return run

    def listing(c: Ctx, h: dict[str, str]) -> TestResponse:
        c.started()
        return c.proxy.get(EXP, headers=h)

    def starting(c: Ctx, h: dict[str, str]) -> TestResponse:
        return c.proxy.post(EXP, json=START, headers=h)

    def getting(c: Ctx, h: dict[str, str]) -> TestResponse:
        return c.proxy.get(f"{EXP}/{c.started()}", headers=h)

    def stopping(c: Ctx, h: dict[str, str]) -> TestResponse:
        return c.proxy.delete(f"{EXP}/{c.started()}", headers=h)

    def conflict(c: Ctx) -> TestResponse:
        c.started()
        return c.proxy.post(EXP, json=START)

    def off(c: Ctx) -> TestResponse:
        c.off()
        return c.proxy.post(EXP, json=START)

    def stopping_all(c: Ctx, h: dict[str, str]) -> TestResponse:
        c.started()
        return c.proxy.delete(f"{EXP}?upstream=echo", headers=h)

    def failing_get(c: Ctx, h: dict[str, str]) -> TestResponse:
        return c.proxy.get(f"{EXP}/{'0' * 32}", headers=h)

    def failing_stop(c: Ctx, h: dict[str, str]) -> TestResponse:
        return c.proxy.delete(f"{EXP}/{'0' * 32}", headers=h)

    one = "/chaos_proxy/_experiments/{id}"
    missing = f"{EXP}/{'f' * 32}"
    return {
        (EXP, "get", "200"): as_owner(listing),
        (EXP, "get", "400"): lambda c: c.proxy.get(f"{EXP}?limit=501"),
        (EXP, "get", "401"): anonymous(listing),
        (EXP, "get", "403"): as_viewer(listing),
        (EXP, "get", "503"): failing(lambda c, h: c.proxy.get(EXP, headers=h)),
        (EXP, "delete", "200"): as_owner(stopping_all),
        (EXP, "delete", "400"): lambda c: c.proxy.delete(f"{EXP}?upstream=_x"),
        (EXP, "delete", "401"): anonymous(stopping_all),
        (EXP, "delete", "403"): as_viewer(stopping_all),
        (EXP, "delete", "503"): failing(lambda c, h: c.proxy.delete(EXP, headers=h)),
        (EXP, "post", "201"): as_owner(starting),
        (EXP, "post", "400"): lambda c: c.proxy.post(EXP, json={**START, "duration_s": 0}),
        (EXP, "post", "401"): anonymous(starting),
        (EXP, "post", "403"): off,
        (EXP, "post", "404"): lambda c: c.proxy.post(EXP, json={**START, "upstream": "nope"}),
        (EXP, "post", "409"): conflict,
        (EXP, "post", "503"): failing(starting),
        (one, "get", "200"): as_owner(getting),
        (one, "get", "401"): anonymous(getting),
        (one, "get", "403"): as_viewer(getting),
        (one, "get", "404"): lambda c: c.proxy.get(missing),
        (one, "get", "503"): failing(failing_get),
        (one, "delete", "200"): as_owner(stopping),
        (one, "delete", "401"): anonymous(stopping),
        (one, "delete", "403"): as_viewer(stopping),
        (one, "delete", "404"): lambda c: c.proxy.delete(missing),
        (one, "delete", "503"): failing(failing_stop),
    }


def _examples() -> dict[tuple[str, str, str], Example]:
    examples: dict[tuple[str, str, str], Example] = {}
    for method in ("get", "post"):
        examples |= {("/chaos_delay", method, s): e for s, e in _delay(method).items()}
        examples |= {("/chaos_proxy", method, s): e for s, e in _mode(method).items()}
    for method in METHODS:
        forward = "/chaos_proxy/{upstream}/{path}"
        examples |= {(forward, method, s): e for s, e in _forward(method).items()}
    return examples | _experiments()


EXAMPLES = _examples()


def documented() -> set[tuple[str, str, str]]:
    return {
        (path, method, status)
        for path, item in DOC["paths"].items()
        for method, op in item.items()
        if method in METHODS
        for status in op["responses"]
    }


def test_every_documented_status_has_an_example_and_nothing_else() -> None:
    assert set(EXAMPLES) == documented()


@pytest.fixture
def ctx(
    delay_client: FlaskClient,
    proxy_client: FlaskClient,
    chaos_env: pytest.MonkeyPatch,
    echo_upstream: EchoUpstream,
) -> Ctx:
    down = f"http://127.0.0.1:{services.free_port()}"
    chaos_env.setenv("CHAOS_UPSTREAMS", f"echo={echo_upstream.url},down={down}")
    chaos_env.setenv("CHAOS_DROP_HOLD_S", "0.01")
    clock = FakeClock(1_800_000_000.0)
    return Ctx(delay_client, proxy_client, chaos_env, MemoryExperimentStore(), clock)


@pytest.mark.parametrize("key", sorted(EXAMPLES), ids=lambda k: " ".join(k))
def test_example_produces_the_documented_status_and_schema(
    ctx: Ctx, key: tuple[str, str, str]
) -> None:
    path, method, status = key
    example = EXAMPLES[key]

    if status == "503" and "_experiments" in path:
        ctx.failing()  # before the runtime is entered, which takes the store
    with use_runtime(clock=ctx.clock, store=ctx.store, verifier=_verifier):
        response = example(ctx)
    spec = resolve(DOC["paths"][path][method]["responses"][status])
    if status == "default":
        assert response.status_code == 200
        return
    assert response.status_code == int(status), response.get_data(as_text=True)
    schema = spec["content"]["application/json"]["schema"]
    body = response.get_json()
    validator = jsonschema.Draft202012Validator(
        {**schema, "components": COMPONENTS}, format_checker=jsonschema.FormatChecker()
    )
    validator.validate(body)
    documented_headers = spec.get("headers", {})
    retryable = status == "429" or body.get("error") in ("too_many_drops", "store_contended")
    if "Retry-After" in documented_headers and retryable:
        assert response.headers["Retry-After"].isdigit()
    if response.headers.get("X-Chaos-Injected") is not None:
        assert "X-Chaos-Injected" in documented_headers
        assert response.headers["X-Chaos-Injected"] == "true"
    assert len(response.headers["X-Trace-Id"]) == 32
    if "trace_id" in body:
        assert response.headers["X-Trace-Id"] == body["trace_id"]
