#!/usr/bin/env bash
# The checkers of tests/deploy (the Dockerfile, deploy/kubernetes, deploy/prometheus, deploy/grafana), into
# ${XDG_CACHE_HOME:-$HOME/.cache}/covetpy, once: a second run finds them there and does nothing.
#   bin/kubeconform            Kubernetes manifest validation, built with `go install` from the Go module proxy
#   prometheus-operator-crd/   the ServiceMonitor/PrometheusRule/... CRDs, from the Prometheus Operator's Go
#                              module (its zip ships them in example/prometheus-operator-crd)
# promtool comes with Debian's `prometheus` package (scripts/setup.sh). The Kubernetes JSON schemas come with
# the kubernetes-validate package (requirements-dev.txt). Called by scripts/setup.sh.
set -euo pipefail

KUBECONFORM_MODULE=github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0
# v0.95.2, the newest, is refused by the module proxy ("not available"); v0.85.0 is served. The CRDs of
# monitoring.coreos.com/v1 (ServiceMonitor, PrometheusRule) are stable across these versions.
PROMETHEUS_OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator@v0.85.0

cache=${XDG_CACHE_HOME:-$HOME/.cache}/covetpy
crds=$cache/prometheus-operator-crd

go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go

if [ ! -x "$cache/bin/kubeconform" ]; then
  [ -n "$go" ] || { echo "deploy-tools.sh: no Go toolchain to build kubeconform (scripts/setup.sh installs one)" >&2; exit 1; }
  echo "deploy-tools.sh: installing kubeconform into $cache/bin ($("$go" version))"
  mkdir -p "$cache/bin"
  GOBIN=$cache/bin GOFLAGS=-mod=mod "$go" install "$KUBECONFORM_MODULE"
fi

if ! compgen -G "$crds/monitoring.coreos.com_*.yaml" >/dev/null; then
  [ -n "$go" ] || { echo "deploy-tools.sh: no Go toolchain to download the Prometheus Operator CRDs" >&2; exit 1; }
  echo "deploy-tools.sh: the Prometheus Operator CRDs ($PROMETHEUS_OPERATOR_MODULE) into $crds"
  # `go mod download` needs no go.mod: run it outside any module.
  dir=$(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod "$go" mod download -json "$PROMETHEUS_OPERATOR_MODULE" |
        python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])')
  mkdir -p "$crds.tmp"
  cp "$dir"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$crds.tmp/"
  chmod u+w "$crds.tmp"/*.yaml  # the module cache is read-only
  rm -rf "$crds" && mv "$crds.tmp" "$crds"
fi
