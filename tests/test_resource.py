"""Where the service runs: the resource detectors, fed fake cgroup files and variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelprod import semconv
from otelprod._pipeline.resource import (
    ContainerDetector,
    HashOnceResource,
    build_resource,
    cloud_attributes,
    container_id,
    detect,
    kubernetes_attributes,
    scrub_resource,
)
from otelprod._pipeline.settings import load_settings
from otelprod.errors import ConfigurationError

ID = "3f4a0c9d1e2b7a6f5c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
OTHER = "0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("cgroup", [
    # cgroup v1, Docker
    f"12:memory:/docker/{ID}\n11:cpu:/docker/{ID}\n",
    # v1 under Kubernetes (cgroupfs driver)
    f"4:pids:/kubepods/besteffort/pod0b1c2d3e-aaaa-bbbb-cccc-0123456789ab/{ID}\n",
    # the systemd driver: runtime-<id>.scope
    f"1:name=systemd:/kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope\n",
    f"0::/system.slice/docker-{ID}.scope\n",
    f"0::/machine.slice/libpod-{ID}.scope/container\n0::/../crio-{ID}.scope\n",
], ids=["v1-docker", "v1-kubepods", "v1-systemd", "v2-docker-scope", "v2-crio"])
def test_container_id_from_cgroup(tmp_path: Path, cgroup: str) -> None:
    assert container_id(write(tmp_path, "cgroup", cgroup),
                        write(tmp_path, "mountinfo", "")) == ID


def test_container_id_ecs_fargate(tmp_path: Path) -> None:
    task = "8a1ba3b6e7d24bd7a5ebb6e1b2c4a0b1"
    cgroup = write(tmp_path, "cgroup", f"9:memory:/ecs/{task}/{task}-3237390380\n")
    assert container_id(cgroup, "/nonexistent") == f"{task}-3237390380"


def test_container_id_from_mountinfo_under_cgroup_v2(tmp_path: Path) -> None:
    cgroup = write(tmp_path, "cgroup", "0::/\n")
    mountinfo = write(tmp_path, "mountinfo", "\n".join([
        "610 590 0:52 / / rw,relatime master:312 - overlay overlay rw,lowerdir=/x",
        # a volume whose name looks like an id is no evidence
        f"620 610 254:1 /var/lib/docker/volumes/{OTHER}/_data /data rw - ext4 /dev/vda1 rw",
        # a pod sandbox's id is not the container's
        "621 610 254:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/"
        f"{OTHER}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda1 rw",
        f"622 610 254:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw,relatime"
        " - ext4 /dev/vda1 rw",
    ]) + "\n")
    assert container_id(cgroup, mountinfo) == ID
    podman = write(tmp_path, "podman", "700 600 0:44 /containers/storage/overlay-containers/"
                   f"{ID}/userdata/hostname /etc/hostname rw - tmpfs tmpfs rw\n")
    assert container_id(cgroup, podman) == ID


@pytest.mark.parametrize("cgroup", [
    "0::/\n",
    "0::/user.slice/user-1000.slice/session-2.scope\n",  # a systemd host, not a container
    "4:memory:/process_api/66043b0fa97e0787f31eed653084a14c\n1:cpu:/\n",
    "",
])
def test_no_container_id_outside_a_container(tmp_path: Path, cgroup: str) -> None:
    mountinfo = write(tmp_path, "mountinfo",
                      "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n"
                      "30 22 0:5 / /etc/hostname rw - tmpfs tmpfs rw\n")
    assert container_id(write(tmp_path, "cgroup", cgroup), mountinfo) is None
    assert ContainerDetector(str(tmp_path / "missing"), str(tmp_path / "missing")) \
        .detect().attributes == {}


def test_kubernetes_from_the_downward_api(tmp_path: Path) -> None:
    namespace_file = write(tmp_path, "namespace", "payments\n")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "K8S_POD_NAME": "checkout-7d9f-x2",
           "NODE_NAME": "node-3", "POD_UID": "0b1c2d3e"}
    assert kubernetes_attributes(env, namespace_file) == {
        semconv.K8S_POD_NAME: "checkout-7d9f-x2", semconv.K8S_NODE_NAME: "node-3",
        semconv.K8S_POD_UID: "0b1c2d3e", semconv.K8S_NAMESPACE_NAME: "payments"}
    # the variable wins over the service account's file
    assert kubernetes_attributes({**env, "POD_NAMESPACE": "web"}, namespace_file)[
        semconv.K8S_NAMESPACE_NAME] == "web"
    # outside Kubernetes the same variables mean nothing
    assert kubernetes_attributes({k: v for k, v in env.items()
                                  if k != "KUBERNETES_SERVICE_HOST"}, namespace_file) == {}


@pytest.mark.parametrize("env,expected", [
    ({"AWS_LAMBDA_FUNCTION_NAME": "resize", "AWS_REGION": "eu-west-1",
      "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST"},
     {"cloud.provider": "aws", "cloud.platform": "aws_lambda", "cloud.region": "eu-west-1",
      "faas.name": "resize", "faas.version": "$LATEST"}),
    ({"ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/x", "AWS_REGION": "us-east-1"},
     {"cloud.provider": "aws", "cloud.platform": "aws_ecs", "cloud.region": "us-east-1"}),
    ({"K_SERVICE": "checkout", "K_REVISION": "checkout-00042-abc"},
     {"cloud.provider": "gcp", "cloud.platform": "gcp_cloud_run", "faas.name": "checkout",
      "faas.version": "checkout-00042-abc"}),
    ({"K_SERVICE": "thumb", "FUNCTION_TARGET": "main"},
     {"cloud.provider": "gcp", "cloud.platform": "gcp_cloud_functions", "faas.name": "thumb"}),
    ({"GAE_SERVICE": "default", "GAE_VERSION": "v3"},
     {"cloud.provider": "gcp", "cloud.platform": "gcp_app_engine", "faas.name": "default",
      "faas.version": "v3"}),
    ({"WEBSITE_SITE_NAME": "shop", "REGION_NAME": "West Europe"},
     {"cloud.provider": "azure", "cloud.platform": "azure.app_service",
      "cloud.region": "West Europe"}),
    ({"WEBSITE_SITE_NAME": "jobs", "FUNCTIONS_WORKER_RUNTIME": "python"},
     {"cloud.provider": "azure", "cloud.platform": "azure.functions", "faas.name": "jobs"}),
    ({"CONTAINER_APP_NAME": "api"},
     {"cloud.provider": "azure", "cloud.platform": "azure.container_apps"}),
    ({"HOME": "/root", "PATH": "/usr/bin", "K_SERVICE": ""}, {}),
], ids=["lambda", "ecs", "cloud-run", "cloud-functions", "app-engine", "app-service",
        "azure-functions", "container-apps", "none"])
def test_cloud_from_environment_variables(env: dict[str, str], expected: dict[str, str]) -> None:
    assert cloud_attributes(env) == expected


def test_detectors_are_chosen_by_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "K8S_POD_NAME": "p-1", "K_SERVICE": "svc"}
    both = detect("k8s,cloud", env).attributes
    assert both[semconv.K8S_POD_NAME] == "p-1" and both[semconv.CLOUD_PLATFORM] == "gcp_cloud_run"
    assert semconv.CLOUD_PROVIDER not in detect("k8s", env).attributes
    # the SDK's own detectors, by their entry-point names
    sdk = detect("process,os", {}).attributes
    assert sdk[semconv.PROCESS_RUNTIME_NAME] and sdk[semconv.PROCESS_RUNTIME_VERSION]
    assert sdk[semconv.PROCESS_RUNTIME_DESCRIPTION] and sdk[semconv.OS_TYPE]
    assert "process.command_args" not in sdk  # argv may hold secrets
    # names the SDK runs itself (OTEL_EXPERIMENTAL_RESOURCE_DETECTORS) are not run twice
    assert detect("process,cloud", {**env, "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process"}
                  ).attributes.keys() == {semconv.CLOUD_PROVIDER, semconv.CLOUD_PLATFORM,
                                          semconv.FAAS_NAME}


def test_the_resource_carries_the_detected_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("K8S_POD_NAME", "checkout-1")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=from-otel-env")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    attrs = build_resource(load_settings(service_name="checkout"),
                           explicit_environment=False).attributes
    assert attrs[semconv.OS_TYPE] and attrs[semconv.PROCESS_RUNTIME_NAME]
    assert attrs[semconv.CLOUD_PLATFORM] == "aws_lambda"
    assert attrs[semconv.K8S_POD_NAME] == "from-otel-env"  # OTEL_RESOURCE_ATTRIBUTES wins
    none = build_resource(load_settings(service_name="checkout", resource_detectors="none"),
                          explicit_environment=False).attributes
    assert semconv.OS_TYPE not in none and semconv.CLOUD_PLATFORM not in none
    assert none[semconv.SERVICE_NAME] == "checkout" and none[semconv.HOST_NAME]


def test_detector_names_are_checked_at_start() -> None:
    assert load_settings(resource_detectors=" OS, Kubernetes,,os").resource_detectors == "os,k8s"
    assert load_settings(resource_detectors="none").resource_detectors == ""
    assert load_settings(environ={"OTELPROD_RESOURCE_DETECTORS": "host"}
                         ).resource_detectors == "host"
    with pytest.raises(ConfigurationError) as refused:
        load_settings(resource_detectors="os,gpc")
    message = str(refused.value)
    assert "resource_detectors" in message and "'gpc'" in message and "process" in message


def test_the_resource_hashes_once_and_stays_one_after_a_merge() -> None:
    """The OTLP encoders hash the resource of every span: otelprod's computes it once."""
    from opentelemetry.sdk.resources import Resource

    resource = scrub_resource(build_resource(load_settings(service_name="checkout"),
                                             explicit_environment=False))
    assert isinstance(resource, HashOnceResource)
    plain = Resource(resource.attributes, resource.schema_url)
    assert hash(resource) == hash(plain) and resource == plain and plain == resource
    assert {resource: 1}[plain] == 1  # the encoders group spans in a dict keyed by resource
    merged = resource.merge(Resource({semconv.PROCESS_PID: 4242}))  # a forked child's pid
    assert isinstance(merged, HashOnceResource)
    assert merged.attributes[semconv.PROCESS_PID] == 4242 and merged != resource
    assert hash(merged) == hash(Resource(merged.attributes, merged.schema_url))
