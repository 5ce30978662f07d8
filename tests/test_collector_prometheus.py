"""collector/: Prometheus scrape configs and alerting rules checked by the real promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.support import prometheus

COLLECTOR = REPO / "collector"


@pytest.fixture(scope="module")
def promtool() -> str:
    return prometheus.binary("promtool")


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], check=False, cwd=COLLECTOR, capture_output=True, text=True, timeout=60)


def test_alert_rules_pass_promtool_check_rules(promtool: str) -> None:
    done = _promtool(promtool, "check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_alert_rules_unit_tests_pass(promtool: str) -> None:
    done = _promtool(promtool, "test", "rules", "rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_alert_rule_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """The unit tests assert something: with the breaker alert's threshold broken they fail."""
    (tmp_path / "alerts.yml").write_text((COLLECTOR / "alerts.yml").read_text().replace(
        'amas_breaker_state="open"}) == 1', 'amas_breaker_state="open"}) == 2'))
    (tmp_path / "rules.test.yml").write_text((COLLECTOR / "rules.test.yml").read_text())
    done = subprocess.run([promtool, "test", "rules", "rules.test.yml"], check=False, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "AmasCircuitBreakerOpen" in done.stdout + done.stderr


def test_scrape_config_passes_promtool_check_config(promtool: str) -> None:
    done = _promtool(promtool, "check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "1 rule files found" in done.stdout


def test_every_required_alert_is_defined() -> None:
    rules = yaml.safe_load((COLLECTOR / "alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    for name, metric in {
        "AmasCircuitBreakerOpen": "amas_breaker_state",
        "AmasReadinessFailing": "amas_health_check_status",
        "AmasHighErrorRatio": "http_server_request_duration_seconds_count",
        "AmasRateLimitRejections": "amas_ratelimit_rejections_total",
        "AmasOtelCollectorDown": 'up{job="otel-collector"}',
    }.items():
        assert metric in alerts[name]["expr"], name
        assert alerts[name]["labels"]["severity"] in ("critical", "warning")
    tested = {
        case["alertname"]
        for test in yaml.safe_load((COLLECTOR / "rules.test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert tested == set(alerts), "every alert has a promtool unit test"
