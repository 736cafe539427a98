"""The host names the cluster gives what serves, with no DNS behind them here (the proxy
gateway maps them to loopback ports: see `InferenceServices.routes`).

- A Service's cluster-local name `<name>.<namespace>.svc.cluster.local` (Kubernetes DNS;
  KServe's `network.GetServiceHostname`, Knative's route address, route.go).
- The external name `<name>-<namespace>.example.com`: KServe's ingress defaults
  (pkg/apis/serving/v1beta1/configmap.go `DefaultDomainTemplate`
  `{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}`, `DefaultIngressDomain`;
  ingress/domain.go `GenerateDomainName`). Knative's own default template has dots
  (`{{.Name}}.{{.Namespace}}.{{.Domain}}`); the cluster recorded in
  tests/fixtures/isvc/ready.json used the hyphen form for Knative too, and so do we.
- A Knative traffic tag's name, `<tag>-<route>` in either form (config-network
  `tag-template` `{{.Tag}}-{{.Name}}`; route/traffic/traffic.go, resources/service.go).
"""

from __future__ import annotations

# A headless Service's pods (a JobSet's) have no DNS here, and no IPs of their own: the
# local cluster gives each pod's name (`<hostname>.<subdomain>`) a loopback address with a
# port of its own, and tells every pod of the set in this variable, a JSON map of name to
# `127.0.0.1:PORT` (read by textcnn.tf_config, where a node builds its TF_CONFIG).
LOCAL_ADDRESSES_ENV = "LOCAL_CLUSTER_ADDRESSES"
# What the kubelet and the Job controller set in every container of an Indexed Job's pod.
HOSTNAME_ENV, COMPLETION_INDEX_ENV = "HOSTNAME", "JOB_COMPLETION_INDEX"

CLUSTER_DOMAIN = "svc.cluster.local"
INGRESS_DOMAIN = "example.com"


def cluster_local(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.{CLUSTER_DOMAIN}"


def external(name: str, namespace: str) -> str:
    return f"{name}-{namespace}.{INGRESS_DOMAIN}"


def tagged(tag: str, name: str) -> str:
    """The route name a tag gets, before either form above is applied to it."""
    return f"{tag}-{name}"


def url(host: str) -> str:
    return f"http://{host}"
