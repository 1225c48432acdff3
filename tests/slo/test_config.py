"""The SLO file is validated up front, with every problem named precisely."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.slo.backends.cloud_monitoring import DistributionQuery, RatioQuery
from shared.slo.backends.local import LocalMetricQuery, LocalQuery
from shared.slo.config import load_config, parse_config
from shared.slo.durations import format_duration, parse_duration
from shared.slo.errors import ConfigInvalid
from tests.slo.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]


def problems_of(path: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigInvalid) as info:
        load_config(path)
    return info.value.problems


def test_shipped_file_has_the_seed_slos() -> None:
    config = load_config(ROOT / "config" / "slos.yaml")
    by_name = {s.name: s for s in config.slos}
    assert set(by_name) == {
        "graphAsk-latency",
        "graphAsk-errors",
        "insights-delivery",
        "general-errors",
    }
    latency = by_name["graphAsk-latency"]
    assert (latency.method, latency.percentile, latency.threshold_ms) == (
        "latency_percentile",
        95,
        900,
    )
    assert latency.objective_text() == "p95 < 900 ms"
    assert isinstance(latency.query, DistributionQuery)
    assert latency.query.unit == "ms"  # run.googleapis.com/request_latencies
    for name in ("graphAsk-errors", "insights-delivery", "general-errors"):
        slo = by_name[name]
        assert (slo.method, slo.goal) == ("good_bad_ratio", 0.99)
        assert isinstance(slo.query, RatioQuery)
        assert slo.query.filter_valid
    # The SRE Workbook's windows: 5m, 30m, 1h, 6h, 3d.
    assert latency.windows_s == (300, 1800, 3600, 21600, 259200)
    assert [(r.severity, r.burn_rate) for r in latency.rules] == [
        ("page", 14.4), ("page", 6.0), ("ticket", 1.0)
    ]  # fmt: skip
    assert config.window_s == 300


def cloud_run_service(function: str) -> str:
    """The Cloud Run service a 2nd-gen function runs as: its name, lower case, '_' as '-'."""
    return function.lower().replace("_", "-")


def test_shipped_file_reads_what_make_deploy_ships() -> None:
    """gen2 functions are Cloud Run services: Cloud Run's metrics, by service name; the insights
    SLI is the metric graph_ask emits through OpenTelemetry's Cloud Monitoring exporter."""
    from scripts.catalog import FUNCTIONS

    # graph_ask is the system under test (examples/graph_ask, target graph_ask).
    deployed = {cloud_run_service(f.name) for f in FUNCTIONS} | {cloud_run_service("graph_ask")}
    config = load_config(ROOT / "config" / "slos.yaml")
    filters = {}
    for slo in config.slos:
        query = slo.query
        if isinstance(query, RatioQuery):
            filters[slo.name] = [query.filter_good, query.filter_valid or query.filter_bad or ""]
        else:
            assert isinstance(query, DistributionQuery)
            filters[slo.name] = [query.filter]
    everything = " ".join(f for fs in filters.values() for f in fs)
    assert "cloudfunctions.googleapis.com" not in everything  # 1st-gen metrics: nothing emits
    assert "custom.googleapis.com" not in everything
    services: set[str] = set()
    for name in ("graphAsk-latency", "graphAsk-errors", "general-errors"):
        for flt in filters[name]:
            assert 'resource.type = "cloud_run_revision"' in flt
            assert re.search(
                r'metric\.type = "run\.googleapis\.com/request_(count|latencies)"', flt
            )
            services.update(re.findall(r'"([a-z0-9-]+)"', flt.split("service_name =")[1]))
            assert "service_name =" in flt
    assert services <= deployed | {"2xx", "3xx", "4xx"}
    assert 'service_name = "graph-ask"' in filters["graphAsk-latency"][0]
    assert 'service_name = "graph-ask"' in filters["graphAsk-errors"][1]
    for flt in filters["insights-delivery"]:
        assert flt.startswith('metric.type = "workload.googleapis.com/insights/deliveries"')
    assert filters["insights-delivery"][0].endswith('AND metric.labels.outcome = "delivered"')
    assert {s.name: s.no_data_alert_after for s in config.slos} == {
        "graphAsk-latency": 6, "graphAsk-errors": 6, "insights-delivery": 12, "general-errors": 6
    }  # fmt: skip


def test_local_file_maps_local_functions_to_the_seed_slos() -> None:
    config = load_config(ROOT / "config" / "slos.local.yaml")
    queries = {s.name: s.query for s in config.slos}
    assert queries["graphAsk-latency"] == LocalQuery(("graphAsk",))
    # Insight deliveries are the counter graph_ask emits, as config/slos.yaml reads it deployed.
    assert queries["insights-delivery"] == LocalMetricQuery(
        "insights/deliveries", good=(("outcome", "delivered"),)
    )
    assert queries["general-errors"] == LocalQuery(("graphAsk", "insights"))
    assert {s.backend for s in config.slos} == {"local"}


def test_yaml_syntax_error_is_reported_not_raised_raw() -> None:
    (problem,) = problems_of(FIXTURES / "syntax_error.yaml")
    assert problem.startswith("not valid YAML:")


def test_unknown_method_lists_the_valid_ones() -> None:
    assert problems_of(FIXTURES / "unknown_method.yaml") == (
        "slos[0] (api-errors).method: must be one of good_bad_ratio, latency_percentile; "
        "got 'distribution_cutt'",
    )


def test_backend_specific_fields_are_checked() -> None:
    assert problems_of(FIXTURES / "missing_filter.yaml") == (
        "slos[0] (api-errors).service_level_indicator.filter_valid / filter_bad: "
        "give exactly one of the two",
        "slos[1] (api-latency).service_level_indicator.unit: must be one of ns, us, ms, s; "
        "got 'minutes'",
    )


def test_policy_and_duplicate_problems_are_all_reported() -> None:
    assert problems_of(FIXTURES / "bad_policy.yaml") == (
        "error_budget_policies.strict[0].severity: must be one of page, ticket; got 'urgent'",
        "error_budget_policies.strict[0].short_window: must be shorter than long_window (5m); "
        "got 1h",
        "slos[1] (api-errors).error_budget_policy: must name one of strict, default; got 'lenient'",
    )


def test_duplicate_names_are_rejected() -> None:
    slo = {"name": "a", "backend": "local", "method": "good_bad_ratio", "goal": 0.9,
           "service_level_indicator": {"function": "f"}}  # fmt: skip
    with pytest.raises(ConfigInvalid) as info:
        parse_config({"backends": {"local": None}, "slos": [slo, slo]})
    assert info.value.problems == (
        "slos[1] (a).name: duplicate SLO name 'a'; names must be unique",
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("goal", 1.0, "slos[0] (a).goal: must be a number > 0 and < 1; got 1.0"),
        ("goal", "99%", "slos[0] (a).goal: required, a number > 0 and < 1; got '99%'"),
        ("window", "30s", "slos[0] (a).window: must be at least 60s (1m); got '30s'"),
        ("window", "5 minutes", "slos[0] (a).window: expected a duration like 30s, 5m, 1h, 3d "
         "(or whole seconds); got '5 minutes'"),
        ("percentile", 95, "slos[0] (a).percentile: only for method latency_percentile"),
        ("colour", "red", "slos[0] (a): unknown field 'colour'; allowed: backend, description, "
         "error_budget_policy, goal, method, name, no_data_alert_after, percentile, service, "
         "service_level_indicator, sli, threshold_ms, window"),
        ("no_data_alert_after", -1, "slos[0] (a).no_data_alert_after: must be a whole number of "
         "windows from 0 (never) to 2016; got -1"),
        ("no_data_alert_after", True, "slos[0] (a).no_data_alert_after: must be a whole number "
         "of windows from 0 (never) to 2016; got True"),
    ],
)  # fmt: skip
def test_field_errors_name_the_slo_the_field_and_what_is_allowed(
    field: str, value: object, expected: str
) -> None:
    slo = {"name": "a", "backend": "local", "method": "good_bad_ratio", "goal": 0.9,
           "service_level_indicator": {"function": "f"}, field: value}  # fmt: skip
    with pytest.raises(ConfigInvalid) as info:
        parse_config({"backends": {"local": {}}, "slos": [slo]})
    assert info.value.problems == (expected,)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigInvalid) as info:
        parse_config(["slos"], source="x.yaml")
    assert "x.yaml" in str(info.value)
    assert info.value.problems == (
        "the file must be a mapping with an 'slos' list; got list ['slos']",
    )


def test_missing_file() -> None:
    (problem,) = problems_of(Path("/nonexistent/slos.yaml"))
    assert problem.startswith("cannot read the file:")


def test_durations_round_trip() -> None:
    assert [parse_duration(v) for v in ("30s", "5m", "1h", "3d", 90)] == [30, 300, 3600, 259200, 90]
    assert [format_duration(s) for s in (300, 3600, 259200, 90, 21600)] == [
        "5m",
        "1h",
        "3d",
        "90s",
        "6h",
    ]
    with pytest.raises(ValueError, match="got '0m'"):
        parse_duration("0m")
    with pytest.raises(ValueError, match="got True"):
        parse_duration(True)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.slo.config", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_check_passes_the_shipped_files() -> None:
    done = run_cli("check", "config/slos.yaml", "config/slos.local.yaml")
    assert done.returncode == 0, done.stderr
    assert "config/slos.yaml: OK, 4 SLO(s)" in done.stdout
    assert done.stderr == ""


def test_cli_check_fails_with_the_message() -> None:
    done = run_cli("check", str(FIXTURES / "unknown_method.yaml"))
    assert done.returncode == 1
    assert "1 problem(s)" in done.stderr
    assert "slos[0] (api-errors).method: must be one of good_bad_ratio" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_usage() -> None:
    assert run_cli().returncode == 2


@pytest.mark.parametrize(
    ("method", "sli", "expected"),
    [
        ("latency_percentile", {"metric": "m", "good": {"outcome": "ok"}},
         "metric: a counter makes a good_bad_ratio SLI only; method is latency_percentile"),
        ("good_bad_ratio", {"metric": "m"},
         "good: give the attributes of the good events, e.g. {outcome: delivered}"),
        ("good_bad_ratio", {"metric": "m", "good": ["ok"]},
         "good: must map attribute names to values; got ['ok']"),
        ("good_bad_ratio", {"metric": "m", "good": {"a": "b"}, "function": "f"},
         "function: unknown field; allowed with metric: metric, labels, good"),
        ("good_bad_ratio", {"metric": "", "good": {"a": "b"}},
         "metric: must be an instrument name; got ''"),
    ],
)  # fmt: skip
def test_local_metric_sli_problems_are_named(
    method: str, sli: dict[str, object], expected: str
) -> None:
    slo = {"name": "a", "backend": "local", "method": method, "service_level_indicator": sli,
           **({"goal": 0.9} if method == "good_bad_ratio" else
              {"percentile": 95, "threshold_ms": 100})}  # fmt: skip
    with pytest.raises(ConfigInvalid) as info:
        parse_config({"backends": {"local": None}, "slos": [slo]})
    assert f"slos[0] (a).service_level_indicator.{expected}" in info.value.problems
