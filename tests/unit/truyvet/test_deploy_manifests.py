"""deploy/: the Docker Compose files against the Compose Specification's JSON schema, the Kubernetes
manifests against the Kubernetes API's own models (every field known, every value of its type), and
the references inside each (services, volumes, config maps, secrets, selectors, hosts) consistent;
the cluster shapes are 3 Kafka brokers in KRaft, 3 ZooKeeper nodes, 2 x 2 ClickHouse servers.

No Docker engine or Kubernetes API here: the schemas come from pip packages (check-jsonschema's vendored
compose-spec.json, read as a file; the official ``kubernetes`` client's models).
"""

from __future__ import annotations

import importlib.util
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes.client as k8s
import pytest
import yaml

from truyvet.settings import PROJECT_ROOT, CommonSettings

DOCKER = PROJECT_ROOT / "deploy" / "docker"
K8S = PROJECT_ROOT / "deploy" / "k8s"
COMPOSE_FILES = [DOCKER / "docker-compose.yml", DOCKER / "docker-compose.cluster.yml"]
K8S_FILES = [K8S / "truyvet.yaml", K8S / "truyvet-cluster.yaml"]
SETTINGS_ENV = {f"TRUYVET_{name.upper()}" for name in CommonSettings.model_fields}


def compose_schema() -> dict[str, Any]:
    spec = importlib.util.find_spec("check_jsonschema")  # not imported: only its vendored schema is read
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(path.read_text())


def validator() -> jsonschema.protocols.Validator:
    schema = compose_schema()
    return jsonschema.validators.validator_for(schema)(schema)  # the draft the schema names (2020-12)


def load_compose(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


# --- Compose ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_is_valid_and_consistent(path: Path) -> None:
    doc = load_compose(path)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator().iter_errors(doc)]
    assert errors == []
    services, volumes = doc["services"], set(doc.get("volumes") or {})
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (path.parent / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} uses undeclared volume {source}"
        if "build" in service:
            assert (path.parent / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        env = service.get("environment") or {}
        unknown = {k for k in env if k.startswith("TRUYVET_")} - SETTINGS_ENV
        assert not unknown, f"{name}: not settings of the services: {unknown}"
        if not service.get("image", "").startswith("truyvet"):
            assert "healthcheck" in service, f"{name} has no health check"


def _hosts(bootstrap: str) -> list[str]:
    return [address.rpartition(":")[0] for address in bootstrap.split(",")]


def _cluster_xml(text: str) -> tuple[list[list[str]], list[str], ET.Element]:
    root = ET.fromstring(text)  # noqa: S314 - the repository's own config file
    (cluster,) = list(root.find("remote_servers") or [])
    shards = [[r.findtext("host") or "" for r in shard.findall("replica")] for shard in cluster.findall("shard")]
    for shard in cluster.findall("shard"):
        assert shard.findtext("internal_replication") == "true"
    zookeeper = [n.findtext("host") or "" for n in root.find("zookeeper").findall("node")]  # type: ignore[union-attr]
    assert cluster.tag == "truyvet" and root.find("distributed_ddl") is not None
    return shards, zookeeper, root


def test_compose_cluster_shape() -> None:
    doc = load_compose(DOCKER / "docker-compose.cluster.yml")
    services = doc["services"]
    by_image: dict[str, list[str]] = {}
    for name, service in services.items():
        by_image.setdefault(service.get("image", "").split(":")[0], []).append(name)
    kafka, zookeeper = by_image["apache/kafka"], by_image["zookeeper"]
    clickhouse = by_image["clickhouse/clickhouse-server"]
    assert len(kafka) == 3 and len(zookeeper) == 3 and len(clickhouse) == 4
    assert all(re.match(r"apache/kafka:4\.", services[k]["image"]) for k in kafka)

    # Kafka: 3 voters, each a broker + controller with its own id, advertising its own name
    envs = {k: services[k]["environment"] for k in kafka}
    ids = {str(e["KAFKA_NODE_ID"]) for e in envs.values()}
    assert ids == {"1", "2", "3"}
    for name, env in envs.items():
        voters = dict(v.split("@") for v in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","))
        assert voters[str(env["KAFKA_NODE_ID"])].split(":")[0] == name
        assert set(h.split(":")[0] for h in voters.values()) == set(kafka)
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3 and int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2

    # ZooKeeper: an ensemble of the three
    for name in zookeeper:
        env = services[name]["environment"]
        members = re.findall(r"server\.(\d)=([\w-]+):2888:3888", env["ZOO_SERVERS"])
        assert {h for _, h in members} == set(zookeeper) and dict(members)[str(env["ZOO_MY_ID"])] == name

    # ClickHouse: remote_servers lists the four by shard, as their macros say; ZooKeeper hosts are services
    shards, zk_hosts, _ = _cluster_xml((DOCKER / "clickhouse-cluster.xml").read_text())
    assert set(zk_hosts) == set(zookeeper)
    assert sorted(h for shard in shards for h in shard) == sorted(clickhouse) and [len(s) for s in shards] == [2, 2]
    for number, shard in enumerate(shards, start=1):
        for host in shard:
            env = services[host]["environment"]
            assert env["CLICKHOUSE_SHARD"] == str(number) and env["CLICKHOUSE_REPLICA"] == host
            assert any("clickhouse-cluster.xml:" in v for v in services[host]["volumes"])
            assert set(zookeeper) <= set(services[host]["depends_on"])

    # The services reach every broker and every server by settings alone
    app = services["ingest"]["environment"]
    assert app["TRUYVET_PROFILE"] == "cluster"
    assert sorted(_hosts(app["TRUYVET_KAFKA_BOOTSTRAP"])) == sorted(kafka)
    assert sorted([app["TRUYVET_CLICKHOUSE_HOST"], *_hosts(app["TRUYVET_CLICKHOUSE_ALT_HOSTS"])]) == sorted(clickhouse)


# --- Kubernetes ------------------------------------------------------------------------------------


def _check_model(value: Any, type_name: str, where: str, errors: list[str]) -> None:
    """``value`` as the Kubernetes API model ``type_name`` (the client's openapi_types) would take it."""
    listed = re.fullmatch(r"[Ll]ist\[(.+)\]", type_name)
    mapped = re.fullmatch(r"[Dd]ict[\[(]str, (.+)[\])]", type_name)
    if listed:
        if not isinstance(value, list):
            errors.append(f"{where}: a list expected")
            return
        for i, item in enumerate(value):
            _check_model(item, listed.group(1), f"{where}[{i}]", errors)
    elif mapped:
        inner = mapped.group(1)
        if not isinstance(value, dict):
            errors.append(f"{where}: a mapping expected")
            return
        for key, item in value.items():
            _check_model(item, inner, f"{where}.{key}", errors)
    elif type_name in ("str", "datetime", "date"):
        if not isinstance(value, str):
            errors.append(f"{where}: a string expected, got {value!r}")
    elif type_name == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{where}: an integer expected, got {value!r}")
    elif type_name == "bool":
        if not isinstance(value, bool):
            errors.append(f"{where}: a boolean expected, got {value!r}")
    elif type_name == "float":
        if not isinstance(value, int | float):
            errors.append(f"{where}: a number expected")
    elif type_name != "object":
        model = getattr(k8s, type_name)
        if not isinstance(value, dict):
            errors.append(f"{where}: an object ({type_name}) expected")
            return
        fields = {json_name: attr for attr, json_name in model.attribute_map.items()}
        for key, item in value.items():
            if key not in fields:
                errors.append(f"{where}: unknown field {key!r} of {type_name}")
            else:
                _check_model(item, model.openapi_types[fields[key]], f"{where}.{key}", errors)


def load_k8s(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


API_VERSIONS = {"ConfigMap": "v1", "Service": "v1", "StatefulSet": "apps/v1", "Deployment": "apps/v1",
                "Job": "batch/v1", "CronJob": "batch/v1", "PodDisruptionBudget": "policy/v1"}


def _pod_labels(docs: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [d["spec"]["template"]["metadata"]["labels"] for d in docs
            if d["kind"] in ("StatefulSet", "Deployment") and "labels" in d["spec"]["template"].get("metadata", {})]


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_k8s_manifests_are_valid_and_consistent(path: Path) -> None:
    docs = load_k8s(path)
    errors: list[str] = []
    for doc in docs:
        kind = doc["kind"]
        assert API_VERSIONS.get(kind) == doc["apiVersion"], f"{kind} with apiVersion {doc['apiVersion']}"
        _check_model(doc, f"V1{kind}", f"{kind}/{doc['metadata']['name']}", errors)
    assert errors == []
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert len(names) == len(docs), "two objects of one kind share a name"
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    pods = _pod_labels(docs)
    header = path.read_text().split("\napiVersion", 1)[0]
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] in ("Service", "PodDisruptionBudget"):
            selector = spec["selector"].get("matchLabels", spec["selector"])
            assert any(selector.items() <= labels.items() for labels in pods), f"{doc['metadata']['name']}: no pod"
        if doc["kind"] in ("StatefulSet", "Deployment"):
            assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        if doc["kind"] == "StatefulSet":
            assert spec["serviceName"] in services
        if doc["kind"] in ("StatefulSet", "Deployment", "Job", "CronJob"):
            template = spec["jobTemplate"]["spec"]["template"] if doc["kind"] == "CronJob" else spec["template"]
            pod = template["spec"]
            volumes = {v["name"] for v in pod.get("volumes", [])} | {
                t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
            for volume in pod.get("volumes", []):
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in config_maps
            for container in pod["containers"]:
                for mount in container.get("volumeMounts", []):
                    assert mount["name"] in volumes, f"{container['name']} mounts unknown {mount['name']}"
                    if "subPath" in mount:
                        source = next(v for v in pod["volumes"] if v["name"] == mount["name"])
                        assert mount["subPath"] in config_maps[source["configMap"]["name"]]
                for ref in container.get("envFrom", []):
                    assert ref["configMapRef"]["name"] in config_maps
                for env in container.get("env", []):
                    secret = env.get("valueFrom", {}).get("secretKeyRef")
                    if secret:  # created by the operator as the header says
                        assert secret["name"] == "truyvet" and f"--from-literal={secret['key']}=" in header
    app_env = config_maps["truyvet"]
    assert not {k for k in app_env if k.startswith("TRUYVET_")} - SETTINGS_ENV
    # the audit log's expired months go only by `truyvet retention run` (admin): scheduled, not left to memory
    (cron,) = [d for d in docs if d["kind"] == "CronJob"]
    (runs,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert runs["command"] == ["truyvet", "retention", "run"] and cron["spec"]["concurrencyPolicy"] == "Forbid"


def _stateful_pods(docs: list[dict[str, Any]]) -> dict[str, str]:
    """``<pod>.<service>`` -> the StatefulSet's name, for every pod the StatefulSets make."""
    return {f"{d['metadata']['name']}-{i}.{d['spec']['serviceName']}": d["metadata"]["name"]
            for d in docs if d["kind"] == "StatefulSet" for i in range(d["spec"]["replicas"])}


def test_k8s_cluster_shape() -> None:
    docs = load_k8s(K8S / "truyvet-cluster.yaml")
    pods = _stateful_pods(docs)
    sets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
    assert sets["kafka"]["spec"]["replicas"] == 3 and sets["zookeeper"]["spec"]["replicas"] == 3
    assert [sets[f"clickhouse-s{s}"]["spec"]["replicas"] for s in (1, 2)] == [2, 2]
    images = {n: s["spec"]["template"]["spec"]["containers"][0]["image"] for n, s in sets.items()}
    assert re.match(r"apache/kafka:4\.", images["kafka"]) and images["zookeeper"].startswith("zookeeper:3.")
    assert all(images[f"clickhouse-s{s}"].startswith("clickhouse/clickhouse-server:") for s in (1, 2))
    kafka_env = {e["name"]: e.get("value") for e in sets["kafka"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    voters = [v.split("@")[1].split(":")[0] for v in kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")]
    assert sorted(voters) == sorted(p for p, s in pods.items() if s == "kafka")
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "clickhouse-cluster")
    shards, zk_hosts, root = _cluster_xml(config["data"]["truyvet-cluster.xml"])
    assert sorted(zk_hosts) == sorted(p for p, s in pods.items() if s == "zookeeper")
    for number, shard in enumerate(shards, start=1):
        assert sorted(shard) == sorted(p for p, s in pods.items() if s == f"clickhouse-s{number}")
        env = {e["name"]: e.get("value") for e in
               sets[f"clickhouse-s{number}"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["CLICKHOUSE_SHARD"] == str(number)
    assert root.find("macros/replica").get("from_env") == "HOSTNAME"  # type: ignore[union-attr]
    app = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "truyvet")["data"]
    assert app["TRUYVET_PROFILE"] == "cluster"
    assert sorted(_hosts(app["TRUYVET_KAFKA_BOOTSTRAP"])) == sorted(p for p, s in pods.items() if s == "kafka")
    servers = [app["TRUYVET_CLICKHOUSE_HOST"], *_hosts(app["TRUYVET_CLICKHOUSE_ALT_HOSTS"])]
    assert sorted(servers) == sorted(p for p, s in pods.items() if s.startswith("clickhouse-s"))
