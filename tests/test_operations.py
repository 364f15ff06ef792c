"""Operations: consumer lag, Prometheus configuration and alerts, the Grafana dashboard.

The configuration is checked by the real `promtool`; the alert rules are unit-tested by it;
dashboard and rules may only name metrics the code exports. Lag is measured on the real
broker, and a real Prometheus (Debian's package) scrapes a running connector and worker.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from prometheus_client import REGISTRY
from pydantic import BaseModel

import backbone.metrics  # noqa: F401  (registers the backbone's metrics)
import streams.operations.table_memory  # noqa: F401  (registers the workers' table memory gauge)
from backbone.settings import REPO_ROOT
from backbone.topics import Topics
from cli.processes import free_port, stop_all
from connectors.registry import CONNECTORS
from simulators.social_care import CaseEvent, CaseManagementSystem, CasePerson
from streams.alerting.notifications.routing import SAMPLE_ROUTING
from streams.operations.faust_sensors import faust_metrics
from streams.operations.lag import CONSUMER_LAG, ConsumerLag
from streams.settings import WorkerSettings
from tests.conftest import Deployment

DEPLOY = REPO_ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_SCRIPT = PROMETHEUS_DIR / "prometheus.sh"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "agency-backbone.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
# Series Prometheus makes itself, which rules may use besides the exported metrics.
PROMETHEUS_SERIES = {"up"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan",
}  # fmt: skip


# --- what the code exports ---------------------------------------------------------------


def exported_series_names() -> set[str]:
    """Every series name the processes can expose, from prometheus_client's registry."""
    faust_metrics()  # the Faust sensors the worker bridges onto its /metrics
    suffixes = {
        "counter": ["_total"],
        "histogram": ["_bucket", "_count", "_sum"],
        "summary": ["", "_count", "_sum"],
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, [""]))
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords, labels removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name.lower() not in PROMQL_WORDS and not _is_duration(name):
            names.add(name)
    return names


def _is_duration(word: str) -> bool:
    return re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", word) is not None


def test_the_exported_names_include_lag_and_the_bridged_faust_sensors() -> None:
    names = exported_series_names()

    assert {"backbone_consumer_lag", "backbone_events_out_total"} <= names
    assert {"faust_messages_received_total", "faust_producer_send_latency_bucket"} <= names
    assert metric_names(
        'sum by (le, x) (rate(a_b_bucket{job="w", q=~"y(z)"}[5m] offset 1w)) > 0.5 and on (x) up'
    ) == {"a_b_bucket", "up"}


# --- Prometheus configuration and alert rules ---------------------------------------------


def promtool() -> str:
    """promtool, installing Debian's prometheus package through deploy/ if it is missing."""
    if shutil.which("promtool") is None:
        result = subprocess.run(
            [str(PROMETHEUS_SCRIPT), "install"], capture_output=True, text=True, check=False
        )
        if result.returncode != 0 or shutil.which("promtool") is None:
            pytest.fail(
                f"promtool is needed; {PROMETHEUS_SCRIPT} install failed:\n{result.stderr[-2000:]}",
                pytrace=False,
            )
    path = shutil.which("promtool")
    assert path is not None
    return path


@pytest.mark.parametrize(
    "check",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml", "alerts_weekly_test.yml"],
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool_accepts_the_deployed_configuration(check: list[str]) -> None:
    result = subprocess.run(
        [promtool(), *check], cwd=PROMETHEUS_DIR, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_cover_the_operators_questions_and_read_exported_metrics() -> None:
    rules = alert_rules()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    known = exported_series_names() | PROMETHEUS_SERIES | recorded
    alerts = {rule["alert"]: rule for rule in rules if "alert" in rule}

    assert {
        "ConsumerLagGrowing",
        "DeadLettersRising",
        "ConnectorStalled",
        "AgencySilent",
        "WorkerDown",
    } <= set(alerts)
    for rule in rules:
        assert metric_names(rule["expr"]) <= known, rule
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name


def test_prometheus_scrapes_workers_and_connectors_with_their_rules() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"backbone-workers", "backbone-connectors"}
    assert config["rule_files"] == ["alerts.yml"]
    for job in jobs.values():
        for discovery in job["file_sd_configs"]:
            for targets in discovery["files"]:
                assert yaml.safe_load((PROMETHEUS_DIR / targets).read_text())


# --- Grafana -------------------------------------------------------------------------------


def dashboard_panels() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    panels: list[dict[str, Any]] = dashboard["panels"]
    return panels


def test_the_dashboard_is_grafana_json_whose_queries_name_exported_metrics() -> None:
    panels = dashboard_panels()
    exported = exported_series_names()
    queried: set[str] = set()

    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat", "gauge", "table", "bargauge"}, panel
        assert panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, target
            assert names <= exported, f"{panel['title']}: {names - exported} not exported"
            queried |= names

    # throughput per agency, lag per partition, latency quantiles, dead letters
    assert {
        "backbone_events_out_total",
        "backbone_consumer_lag",
        "backbone_processing_seconds_bucket",
        "backbone_end_to_end_seconds_bucket",
        "backbone_dead_letters_total",
    } <= queried


def test_grafana_provisioning_loads_the_dashboard_from_prometheus() -> None:
    datasources = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yaml").read_text()
    )
    providers = yaml.safe_load(
        (GRAFANA_PROVISIONING / "dashboards" / "agency-backbone.yaml").read_text()
    )
    dashboard = json.loads(DASHBOARD.read_text())
    variable = dashboard["templating"]["list"][0]

    assert datasources["apiVersion"] == providers["apiVersion"] == 1
    assert [source["type"] for source in datasources["datasources"]] == ["prometheus"]
    assert variable["name"] == "datasource" and variable["query"] == "prometheus"
    assert variable["current"]["value"] == datasources["datasources"][0]["uid"]
    assert providers["providers"][0]["type"] == "file"
    assert providers["providers"][0]["options"]["path"]


# --- consumer lag on the real broker -------------------------------------------------------


def make_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topic = admin.list_topics(name, timeout=10).topics.get(name)
        if topic and topic.partitions and all(p.leader >= 0 for p in topic.partitions.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} has no leader")


def produce(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for partition, count in counts.items():
        for n in range(count):
            producer.produce(topic, f"record {n}".encode(), partition=partition)
    assert producer.flush(30) == 0


def commit(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def test_consumer_lag_is_the_high_watermark_minus_the_committed_offset(
    deployment: Deployment,
) -> None:
    topic = f"{deployment.prefix}.lag-probe"
    group = f"{deployment.prefix}-lag-probe"
    make_topic(deployment.bootstrap, topic, 2)
    produce(deployment.bootstrap, topic, {0: 7, 1: 4})
    commit(deployment.bootstrap, group, [TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 4)])
    commit(deployment.bootstrap, f"other{deployment.prefix}", [TopicPartition(topic, 0, 1)])
    lag = ConsumerLag(deployment.bootstrap, f"{deployment.prefix}-")

    measured = lag.measure()
    lag.export(measured)

    assert [(m.group, m.topic, m.partition, m.lag) for m in measured] == [
        (group, topic, 0, 5),
        (group, topic, 1, 0),
    ]
    assert (
        REGISTRY.get_sample_value(
            "backbone_consumer_lag", {"group": group, "topic": topic, "partition": "0"}
        )
        == 5.0
    )
    lag.export([])
    assert (
        REGISTRY.get_sample_value(
            "backbone_consumer_lag", {"group": group, "topic": topic, "partition": "0"}
        )
        is None
    )
    assert CONSUMER_LAG is REGISTRY._names_to_collectors["backbone_consumer_lag"]


def test_a_group_assigned_partitions_but_no_commits_lags_from_the_earliest_offset(
    deployment: Deployment,
) -> None:
    topic = f"{deployment.prefix}.lag-assigned"
    group = f"{deployment.prefix}-lag-assigned"
    make_topic(deployment.bootstrap, topic, 2)
    produce(deployment.bootstrap, topic, {0: 3, 1: 6})
    consumer = Consumer(
        {"bootstrap.servers": deployment.bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment(), "the probe consumer was never assigned its partitions"

        measured = ConsumerLag(deployment.bootstrap, group).measure()
    finally:
        consumer.close()

    assert [(m.topic, m.partition, m.committed, m.lag) for m in measured] == [
        (topic, 0, 0, 3),
        (topic, 1, 0, 6),
    ]


# --- a real Prometheus scraping a running connector and worker ------------------------------


@dataclass
class Observed:
    deployment: Deployment
    prometheus: httpx.Client
    system: CaseManagementSystem

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = self.prometheus.get("/api/v1/query", params={"query": promql})
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    def deliver(self, numbers: range) -> None:
        """The social care system POSTs one new case event per number."""
        for number in numbers:
            assert self.system.deliver(case_event(number)).status_code == 202

    def series(
        self, promql: str, positive: bool = True, timeout_s: float = 60.0
    ) -> list[dict[str, Any]]:
        """The query's result once it has series (with a positive value, if `positive`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(promql)
            if any(float(entry["value"][1]) > 0 or not positive for entry in result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql} gave no positive series in {timeout_s} s: {result}")
            time.sleep(0.5)


def scrape_config(deployment: Deployment) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, pointed at this test's processes, scraping each second."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    targets = {
        "backbone-workers": [{"targets": [f"127.0.0.1:{deployment.worker_port}"]}],
        "backbone-connectors": [
            {
                "targets": [f"127.0.0.1:{deployment.connector_metrics_port}"],
                "labels": {"connector": "social-care-webhook"},
            }
        ],
    }
    for job in config["scrape_configs"]:
        del job["file_sd_configs"]
        job["static_configs"] = targets[job["job_name"]]
    return config


@dataclass
class Prometheus:
    """A Prometheus process started by deploy/prometheus/prometheus.sh, and its port."""

    process: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def start_prometheus(config: dict[str, Any], workdir: Path) -> Prometheus:
    promtool()  # installs the package if missing
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [str(PROMETHEUS_SCRIPT), "run", str(config_file), str(port), str(workdir / "data")],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200:
                return Prometheus(process, port)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError("prometheus was not ready within 30 s")


@pytest.fixture(scope="module")
def observed(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observed]:
    logs = tmp_path_factory.mktemp("logs")
    worker = deployment.start_worker(logs)
    connector = deployment.start_webhook_connector(logs)
    prometheus: Prometheus | None = None
    try:
        connector.wait_healthy()
        worker.wait_healthy()
        prometheus = start_prometheus(scrape_config(deployment), tmp_path_factory.mktemp("prom"))
        system = CaseManagementSystem(
            f"http://127.0.0.1:{deployment.webhook_port}", deployment.webhook_secret.encode()
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{prometheus.port}", timeout=10)
        yield Observed(deployment, client, system)
        client.close()
        system.close()
    finally:
        if prometheus is not None:
            prometheus.stop()
        stop_all([connector, worker])


def case_event(number: int) -> CaseEvent:
    person = CasePerson(f"CP-{uuid.uuid4().hex[:8]}", "Nowak", "Zofia", date(1990, 5, 17))
    occurred = datetime(2026, 11, 1, 9, number % 60, tzinfo=UTC)
    return CaseEvent("case_opened", occurred, f"CASE-{number}", person)


def test_prometheus_sees_throughput_per_agency_and_lag_per_partition(observed: Observed) -> None:
    prefix = observed.deployment.prefix
    # A counter's first scrape is its baseline: let Prometheus see it before the second batch.
    observed.deliver(range(10))
    observed.series('backbone_events_out_total{job="backbone-connectors"} >= 10')
    observed.deliver(range(10, 20))

    throughput = observed.series(
        "sum by (job, component, agency, topic) "
        '(rate(backbone_events_out_total{job="backbone-connectors"}[1m]))'
    )
    published = observed.series('backbone_events_out_total{job="backbone-connectors"} >= 20')
    processed = observed.series(
        'backbone_events_in_total{job="backbone-workers", component="timeline"}'
    )
    # The agency topics are read by the framer's group, the frames by the workers' own.
    lag = observed.series(f'backbone_consumer_lag{{group="{prefix}-framer"}}', positive=False)

    assert [entry["metric"] for entry in throughput] == [
        {
            "job": "backbone-connectors",
            "component": "social-care-webhook",
            "agency": "social_care",
            "topic": f"{prefix}.social_care.events",
        }
    ]
    assert float(published[0]["value"][1]) == 20
    assert published[0]["metric"]["connector"] == "social-care-webhook"
    assert processed[0]["metric"]["agency"] == "social_care"
    partitions = {
        (entry["metric"]["topic"], entry["metric"]["partition"])
        for entry in lag
        if entry["metric"]["topic"] == f"{prefix}.social_care.events"
    }
    assert partitions == {
        (f"{prefix}.social_care.events", "0"),
        (f"{prefix}.social_care.events", "1"),
    }
    for entry in lag:
        assert entry["metric"]["job"] == "backbone-workers"
        assert entry["metric"]["instance"] == f"127.0.0.1:{observed.deployment.worker_port}"


def test_the_worker_metrics_carry_faust_sensors_and_prometheus_loaded_the_rules(
    observed: Observed,
) -> None:
    received = observed.series('faust_messages_received_total{job="backbone-workers"}')
    up = observed.series('up{job=~"backbone-.*"}')
    rules = observed.prometheus.get("/api/v1/rules").json()["data"]["groups"]

    assert float(received[0]["value"][1]) > 0
    assert {entry["metric"]["job"] for entry in up} == {"backbone-workers", "backbone-connectors"}
    loaded = {rule["name"] for group in rules for rule in group["rules"]}
    assert {"ConsumerLagGrowing", "DeadLettersRising", "WorkerDown", "AgencySilent"} <= loaded


# --- compose (structure only: there is no Docker engine here) -------------------------------

COMPOSE = DEPLOY / "compose"


def compose_services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    services: dict[str, dict[str, Any]] = document["services"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), volume
            elif not source.startswith("$"):
                assert source in document["volumes"], volume
        for needed in service.get("depends_on", []):
            assert needed in services, needed
    return services


def settings_class(service: dict[str, Any]) -> type[BaseModel]:
    """The settings class of the backbone process a compose service runs."""
    command = service.get("command") or service["entrypoint"][-1].split()[-1:]
    if command == ["worker"]:
        return WorkerSettings
    kind = CONNECTORS[command[2]].settings
    module, _, name = kind.partition(":")
    model: type[BaseModel] = getattr(importlib.import_module(module), name)
    return model


def test_compose_runs_kafka_in_kraft_mode_with_prometheus_and_grafana() -> None:
    services = compose_services()
    kafka = services["kafka"]

    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert (
        "../prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro"
        in (services["prometheus"]["volumes"])
    )


def routing_secrets() -> set[str]:
    """The variables the sample notification routing reads its webhook secrets from."""
    routing = yaml.safe_load(SAMPLE_ROUTING.read_text())
    return {
        channel["webhook"]["secret_env"]
        for section in ("teams", "escalation")
        for channels in routing.get(section, {}).values()
        for channel in channels
        if "webhook" in channel
    }


def test_compose_runs_the_worker_and_every_connector_with_settings_they_know() -> None:
    services = compose_services()
    backbone = {name: s for name, s in services.items() if s.get("image", "").startswith("agency")}
    connectors = {name for name, s in backbone.items() if s.get("command", [""])[0] == "connector"}

    assert connectors == set(CONNECTORS)
    for name, service in backbone.items():
        model = settings_class(service)
        environment = set(service["environment"])
        fields = {f"BACKBONE_{field.upper()}": info for field, info in model.model_fields.items()}
        known = set(fields) | (routing_secrets() if model is WorkerSettings else set())
        assert environment <= known, f"{name}: {environment - known} unknown"
        required = {variable for variable, info in fields.items() if info.is_required()}
        if model is WorkerSettings:
            required |= routing_secrets()  # the worker refuses to start without them
        assert required <= environment, f"{name}: {required - environment} missing"
        if name in connectors:
            assert service["command"] == ["connector", "run", name]


def test_compose_prometheus_targets_are_the_services_metrics_ports() -> None:
    services = compose_services()
    targets = {
        job: {
            target
            for group in yaml.safe_load((COMPOSE / "prometheus-targets" / f"{job}.yml").read_text())
            for target in group["targets"]
        }
        for job in ("workers", "connectors")
    }

    assert targets["workers"] == {
        f"worker:{services['worker']['environment']['BACKBONE_WORKER_PORT']}"
    }
    assert targets["connectors"] == {
        f"{name}:{services[name]['environment']['BACKBONE_METRICS_PORT']}" for name in CONNECTORS
    }


# --- Kubernetes manifests (schemas bundled by kubernetes-validate; nothing is downloaded) -----

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.37.0"
# Strimzi's CRD schemas are not bundled anywhere offline: these check the fields we rely on.
STRIMZI_SCHEMAS: dict[str, dict[str, Any]] = {
    "Kafka": {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["kafka", "entityOperator"],
                "properties": {
                    "kafka": {
                        "type": "object",
                        "required": ["listeners", "config"],
                        "properties": {
                            "listeners": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["name", "port", "type", "tls"],
                                },
                            }
                        },
                    },
                    "entityOperator": {"type": "object", "required": ["topicOperator"]},
                },
            }
        },
    },
    "KafkaNodePool": {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["replicas", "roles", "storage"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 1},
                    "roles": {
                        "type": "array",
                        "items": {"enum": ["controller", "broker"]},
                    },
                },
            }
        },
    },
    "KafkaTopic": {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["topicName", "partitions", "replicas"],
                "additionalProperties": False,
                "properties": {
                    "topicName": {"type": "string"},
                    "partitions": {"type": "integer", "minimum": 1},
                    "replicas": {"type": "integer", "minimum": 1},
                    "config": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            }
        },
    },
}


def k8s_resources() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted(K8S.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def test_kubernetes_manifests_pass_schema_validation() -> None:
    resources = k8s_resources()
    cluster = next(r["metadata"]["name"] for r in resources if r["kind"] == "Kafka")

    for resource in resources:
        if resource["apiVersion"].startswith("kafka.strimzi.io/"):
            jsonschema.validate(resource, STRIMZI_SCHEMAS[resource["kind"]])
            if resource["kind"] != "Kafka":
                assert resource["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        else:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    assert {resource["kind"] for resource in resources} >= {
        "Kafka", "KafkaTopic", "StatefulSet", "Deployment", "Service",
        "HorizontalPodAutoscaler",
    }  # fmt: skip


def test_kubernetes_validation_rejects_a_misspelt_field() -> None:
    statefulset = next(r for r in k8s_resources() if r["kind"] == "StatefulSet")
    statefulset["spec"]["replica"] = statefulset["spec"].pop("replicas")

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


def test_workers_keep_rocksdb_state_and_scale_on_lag_up_to_the_partition_count() -> None:
    resources = k8s_resources()
    by_kind = {(r["kind"], r["metadata"]["name"]): r for r in resources}
    workers = by_kind[("StatefulSet", "backbone-worker")]
    autoscaler = by_kind[("HorizontalPodAutoscaler", "backbone-worker")]
    config = by_kind[("ConfigMap", "backbone-config")]["data"]
    topics = [r for r in resources if r["kind"] == "KafkaTopic"]
    mounts = workers["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]

    assert [claim["metadata"]["name"] for claim in workers["spec"]["volumeClaimTemplates"]] == [
        mount["name"] for mount in mounts if mount["mountPath"] == config["BACKBONE_DATA_DIR"]
    ]
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == "backbone-worker"
    metric = autoscaler["spec"]["metrics"][0]["external"]["metric"]
    assert metric["name"] == "backbone_consumer_lag"
    assert (
        metric["selector"]["matchLabels"]["group"] == f"{config['BACKBONE_TOPIC_PREFIX']}-streams"
    )
    assert autoscaler["spec"]["maxReplicas"] <= int(config["BACKBONE_PARTITIONS"])
    expected = Topics(config["BACKBONE_TOPIC_PREFIX"])
    assert {topic["spec"]["topicName"] for topic in topics} == set(expected.all())
    for topic in topics:
        partitions, layout = expected.layout(
            topic["spec"]["topicName"], int(config["BACKBONE_PARTITIONS"])
        )
        assert topic["spec"]["partitions"] == partitions
        assert layout.items() <= topic["spec"].get("config", {}).items()


def test_the_cluster_prometheus_config_passes_promtool_with_the_same_rules(
    tmp_path: Path,
) -> None:
    scrape = next(r for r in k8s_resources() if r["metadata"]["name"] == "backbone-prometheus")
    config = yaml.safe_load(scrape["data"]["prometheus.yml"])
    config["rule_files"] = [str(PROMETHEUS_DIR / "alerts.yml")]
    for job in config["scrape_configs"]:
        # Debian's Prometheus is built without Kubernetes discovery, so promtool rejects the
        # block; a stand-in target keeps the rest (relabelling included) under its check.
        assert job.pop("kubernetes_sd_configs")[0]["role"] == "pod"
        job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))

    result = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert [job["job_name"] for job in config["scrape_configs"]] == [
        "backbone-workers",
        "backbone-connectors",
    ]
