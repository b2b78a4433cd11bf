"""The resource every signal carries: who is sending, and where it runs.

Detectors never make a network call, so ``init()`` costs the same on a laptop
as in the cloud (the cloud providers' own detectors ask a metadata server,
which can take seconds where there is none). Which ones run is the
``resource_detectors`` setting (``OTELPROD_RESOURCE_DETECTORS``), a list in the
style of ``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS``:

* ``process``, ``os``, ``host``: the SDK's own detectors (``process.runtime.*``,
  ``process.executable.*``, ``os.type``, ``os.version``, ``host.arch``, ``host.id``;
  never the command line, which may hold secrets);
* ``container``: ``container.id`` from ``/proc/self/cgroup`` (cgroup v1, and v2
  where the path still names the container) or ``/proc/self/mountinfo`` (v2);
* ``k8s``: ``k8s.pod.name``, ``k8s.namespace.name``, ``k8s.node.name``,
  ``k8s.pod.uid`` from downward-API variables, only when ``KUBERNETES_SERVICE_HOST``
  is set;
* ``cloud``: ``cloud.provider``/``cloud.platform`` (and what the same variables
  tell: region, function name and version) from the variables AWS Lambda and ECS,
  Cloud Run, Cloud Functions, App Engine, Azure App Service, Functions, Container
  Apps and Heroku set;
* any other ``opentelemetry_resource_detector`` entry point installed.

``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS`` keeps its SDK meaning: the SDK runs
the detectors it names inside ``Resource.create()`` (otelprod then skips its
own run of the same name). Precedence, lowest first: otelprod's defaults, the
detectors, ``OTEL_RESOURCE_ATTRIBUTES``/``OTEL_SERVICE_NAME``, ``init()`` arguments.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource, ResourceDetector

from otelprod import semconv
from otelprod._pipeline.settings import Settings

_log = logging.getLogger("otelprod.resource")

CGROUP_PATH = "/proc/self/cgroup"
MOUNTINFO_PATH = "/proc/self/mountinfo"
K8S_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

_HEX64 = re.compile(r"[0-9a-f]{64}")
#: the last segment of a cgroup path that names a container: ``<64 hex>``,
#: ``docker-<id>.scope``, ``cri-containerd-<id>.scope``, ``crio-<id>.scope``, …, or
#: ECS Fargate's ``<32 hex>-<digits>``
_CGROUP_CONTAINER = re.compile(
    r"(?:[a-z0-9_.-]*-)?(?P<id>[0-9a-f]{64})(?:\.scope)?|(?P<ecs>[0-9a-f]{32}-\d{1,12})")
#: where a container runtime bind-mounts files that live in the container's own directory
_RUNTIME_MOUNTS = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


def container_id(cgroup_path: str = CGROUP_PATH,
                 mountinfo_path: str = MOUNTINFO_PATH) -> str | None:
    """The id of the container this process runs in, or None (not in one, or not told)."""
    return _container_id_from_cgroup(_read(cgroup_path)) or \
        _container_id_from_mountinfo(_read(mountinfo_path))


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read(1 << 20)
    except OSError:
        return ""


def _container_id_from_cgroup(text: str) -> str | None:
    """cgroup v1 (``12:memory:/docker/<id>``), or v2 where the path still names the
    container (``0::/system.slice/docker-<id>.scope``, no cgroup namespace)."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1].strip()
        last = path.rsplit("/", 1)[-1]
        match = _CGROUP_CONTAINER.fullmatch(last)
        if match:
            return match["id"] or match["ecs"]
    return None


def _container_id_from_mountinfo(text: str) -> str | None:
    """cgroup v2 in a cgroup namespace (``/proc/self/cgroup`` says ``0::/``): the runtime
    bind-mounts /etc/hostname and friends from the container's directory, whose name is the
    id (``/var/lib/docker/containers/<id>/hostname``). A pod sandbox's id is not the
    container's, and a volume mounted elsewhere is no evidence."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[4] not in _RUNTIME_MOUNTS:
            continue
        segments = fields[3].split("/")
        for i, segment in enumerate(segments):
            if _HEX64.fullmatch(segment) and (i == 0 or segments[i - 1] != "sandboxes"):
                return segment
    return None


def kubernetes_attributes(environ: Mapping[str, str],
                          namespace_path: str = K8S_NAMESPACE_PATH) -> dict[str, str]:
    """Pod, namespace, node and pod uid from the downward API, inside Kubernetes only.

    The pod spec passes them, e.g. ``env: [{name: K8S_POD_NAME, valueFrom: {fieldRef:
    {fieldPath: metadata.name}}}]``; ``POD_NAME``, ``POD_NAMESPACE``, ``NODE_NAME`` and
    ``POD_UID`` are read too. The namespace falls back on the service account's file.
    """
    if not environ.get("KUBERNETES_SERVICE_HOST"):
        return {}
    sources = {
        semconv.K8S_POD_NAME: ("K8S_POD_NAME", "POD_NAME"),
        semconv.K8S_NAMESPACE_NAME: ("K8S_NAMESPACE_NAME", "POD_NAMESPACE"),
        semconv.K8S_NODE_NAME: ("K8S_NODE_NAME", "NODE_NAME"),
        semconv.K8S_POD_UID: ("K8S_POD_UID", "POD_UID"),
    }
    found = {}
    for attribute, names in sources.items():
        value = next((environ[n].strip() for n in names if environ.get(n, "").strip()), None)
        if value:
            found[attribute] = value
    if semconv.K8S_NAMESPACE_NAME not in found:
        namespace = _read(namespace_path).strip()
        if namespace:
            found[semconv.K8S_NAMESPACE_NAME] = namespace
    return found


def cloud_attributes(environ: Mapping[str, str]) -> dict[str, str]:
    """The cloud provider and platform, from the variables each platform sets; {} elsewhere."""
    env = {k: v for k, v in environ.items() if v}
    out: dict[str, str] = {}
    if "AWS_LAMBDA_FUNCTION_NAME" in env:
        out = {semconv.CLOUD_PROVIDER: "aws", semconv.CLOUD_PLATFORM: "aws_lambda",
               semconv.FAAS_NAME: env["AWS_LAMBDA_FUNCTION_NAME"]}
        _copy(env, out, {"AWS_REGION": semconv.CLOUD_REGION,
                         "AWS_LAMBDA_FUNCTION_VERSION": semconv.FAAS_VERSION,
                         "AWS_LAMBDA_LOG_STREAM_NAME": semconv.FAAS_INSTANCE})
    elif "ECS_CONTAINER_METADATA_URI_V4" in env or "ECS_CONTAINER_METADATA_URI" in env:
        out = {semconv.CLOUD_PROVIDER: "aws", semconv.CLOUD_PLATFORM: "aws_ecs"}
        _copy(env, out, {"AWS_DEFAULT_REGION": semconv.CLOUD_REGION,
                         "AWS_REGION": semconv.CLOUD_REGION})
    elif "K_SERVICE" in env:  # Cloud Run services, and Cloud Functions (2nd gen) on it
        platform = "gcp_cloud_functions" if "FUNCTION_TARGET" in env else "gcp_cloud_run"
        out = {semconv.CLOUD_PROVIDER: "gcp", semconv.CLOUD_PLATFORM: platform,
               semconv.FAAS_NAME: env["K_SERVICE"]}
        _copy(env, out, {"K_REVISION": semconv.FAAS_VERSION})
    elif "CLOUD_RUN_JOB" in env:
        out = {semconv.CLOUD_PROVIDER: "gcp", semconv.CLOUD_PLATFORM: "gcp_cloud_run",
               semconv.FAAS_NAME: env["CLOUD_RUN_JOB"]}
        _copy(env, out, {"CLOUD_RUN_EXECUTION": semconv.FAAS_VERSION})
    elif "GAE_SERVICE" in env:
        out = {semconv.CLOUD_PROVIDER: "gcp", semconv.CLOUD_PLATFORM: "gcp_app_engine",
               semconv.FAAS_NAME: env["GAE_SERVICE"]}
        _copy(env, out, {"GAE_VERSION": semconv.FAAS_VERSION,
                         "GAE_INSTANCE": semconv.FAAS_INSTANCE})
    elif "CONTAINER_APP_NAME" in env:
        out = {semconv.CLOUD_PROVIDER: "azure", semconv.CLOUD_PLATFORM: "azure.container_apps"}
    elif "WEBSITE_SITE_NAME" in env:
        functions = "FUNCTIONS_WORKER_RUNTIME" in env or "FUNCTIONS_EXTENSION_VERSION" in env
        out = {semconv.CLOUD_PROVIDER: "azure",
               semconv.CLOUD_PLATFORM: "azure.functions" if functions else "azure.app_service"}
        if functions:
            out[semconv.FAAS_NAME] = env["WEBSITE_SITE_NAME"]
        _copy(env, out, {"REGION_NAME": semconv.CLOUD_REGION,
                         "WEBSITE_INSTANCE_ID": semconv.FAAS_INSTANCE if functions
                         else semconv.HOST_ID})
    elif "DYNO" in env and "HEROKU_APP_NAME" in env:  # Heroku, with dyno metadata enabled
        out = {semconv.CLOUD_PROVIDER: "heroku"}
    return out


def _copy(env: Mapping[str, str], out: dict[str, str], names: Mapping[str, str]) -> None:
    for variable, attribute in names.items():
        if variable in env:
            out[attribute] = env[variable]


class ContainerDetector(ResourceDetector):
    """``container.id`` (reads two files under /proc; paths injectable for tests)."""

    def __init__(self, cgroup_path: str = CGROUP_PATH,
                 mountinfo_path: str = MOUNTINFO_PATH) -> None:
        super().__init__()
        self.paths = (cgroup_path, mountinfo_path)

    def detect(self) -> Resource:
        found = container_id(*self.paths)
        return Resource({semconv.CONTAINER_ID: found} if found else {})


class KubernetesDetector(ResourceDetector):
    def __init__(self, environ: Mapping[str, str] | None = None,
                 namespace_path: str = K8S_NAMESPACE_PATH) -> None:
        super().__init__()
        self.environ = os.environ if environ is None else environ
        self.namespace_path = namespace_path

    def detect(self) -> Resource:
        return Resource(kubernetes_attributes(self.environ, self.namespace_path))


class CloudDetector(ResourceDetector):
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.environ = os.environ if environ is None else environ

    def detect(self) -> Resource:
        return Resource(cloud_attributes(self.environ))


def _detector(name: str, environ: Mapping[str, str]) -> ResourceDetector | None:
    if name == "container":
        return ContainerDetector()
    if name == "k8s":
        return KubernetesDetector(environ)
    if name == "cloud":
        return CloudDetector(environ)
    from importlib.metadata import entry_points

    for entry in entry_points(group="opentelemetry_resource_detector", name=name):
        detector: ResourceDetector = entry.load()()
        return detector
    return None


def detect(names: str, environ: Mapping[str, str] | None = None) -> Resource:
    """Merge what the detectors ``names`` (comma-separated) find, in order; a detector that
    fails is said on the ``otelprod.resource`` logger and skipped."""
    env = os.environ if environ is None else environ
    # the SDK runs these itself in Resource.create(): once is enough
    sdk_runs = {n.strip() for n in env.get("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "").split(",")}
    resource = Resource.get_empty()
    for name in filter(None, names.split(",")):
        if name in sdk_runs:
            continue
        try:
            detector = _detector(name, env)
            if detector is None:
                _log.warning("otelprod: no resource detector named %r is installed", name)
                continue
            resource = resource.merge(detector.detect())
        except Exception as exc:
            _log.warning("otelprod: resource detector %r failed: %s: %s", name,
                         type(exc).__name__, exc)
    return resource


class HashOnceResource(Resource):
    """A resource that computes its hash once.

    The OTLP encoders group every span and log record by its resource, hashing
    the resource each time, and the SDK's hash is a sorted JSON dump of the
    attributes: with the ~20 attributes the detectors add, that was 7 µs per
    span, a tenth of the pipeline's throughput. A resource's attributes never
    change, so neither does its hash; a merge (a forked child's new
    ``process.pid``) gives another resource of this kind.
    """

    _hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = super().__hash__()
        return self._hash

    def merge(self, other: Resource) -> Resource:
        merged = super().merge(other)
        return HashOnceResource(merged.attributes, merged.schema_url)


def build_resource(settings: Settings, *, explicit_environment: bool) -> Resource:
    """Defaults, the detectors, then the SDK's ``Resource.create()`` (``service.instance.id``,
    regenerated by the SDK after a fork, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``),
    then explicit code."""
    defaults = Resource({
        semconv.SERVICE_VERSION: "unknown",
        semconv.DEPLOYMENT_ENVIRONMENT_NAME: settings.environment,
        semconv.HOST_NAME: socket.gethostname(),
        semconv.PROCESS_PID: os.getpid(),
    })
    explicit: dict[str, Any] = {}
    if settings.service_name:
        explicit[semconv.SERVICE_NAME] = settings.service_name
    if settings.service_version:
        explicit[semconv.SERVICE_VERSION] = settings.service_version
    if explicit_environment:
        explicit[semconv.DEPLOYMENT_ENVIRONMENT_NAME] = settings.environment
    detected = detect(settings.resource_detectors)
    merged = defaults.merge(detected).merge(Resource.create()).merge(Resource(explicit))
    return HashOnceResource(merged.attributes, merged.schema_url)


def service_name(resource: Resource) -> str:
    return str(resource.attributes.get(semconv.SERVICE_NAME, "unknown_service"))


def update_identity(providers: Iterable[object], attributes: Mapping[str, Any]) -> None:
    """Merge ``attributes`` (service.name, …) into the resource of running SDK providers.

    For an application whose ``init(service_name=...)`` comes after otelprod was
    started by ``otelprod run`` or ``opentelemetry-instrument``: from then on
    its telemetry carries the name the code gives.
    """
    from otelprod._compat import otel_sdk

    update = Resource(dict(attributes))
    for provider in providers:
        if provider is not None:
            otel_sdk.update_resource(provider, update)


def scrub_resource(resource: Resource) -> Resource:
    """``resource`` itself when nothing in it is secret, else a scrubbed copy.

    Every signal carries the resource, so ``init()`` scrubs it once, here (a
    deployment puts a DSN or a token in ``OTEL_RESOURCE_ATTRIBUTES`` by mistake).
    """
    from otelprod._scrub import scrubber

    if scrubber.is_clean(resource.attributes):
        return resource
    return HashOnceResource(scrubber.scrub_mapping(resource.attributes), resource.schema_url)
