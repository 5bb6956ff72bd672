"""The deployment files agree with the service: settings, ports, probes, drain.

No container engine runs here, so the files are checked, not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import yaml

from service.settings import PREFIX, Settings

INFRA = Path(__file__).resolve().parents[2] / "infra"
SETTINGS = {PREFIX + f.name.upper() for f in msgspec.structs.fields(Settings)}
ROUTES = {"/readyz", "/healthz"}


def _env_names(text: str) -> set[str]:
    return set(re.findall(r"\bHERALD_[A-Z_]+\b", text))


def test_every_herald_variable_in_infra_is_a_setting() -> None:
    for path in INFRA.rglob("*"):
        if path.is_file():
            unknown = _env_names(path.read_text()) - SETTINGS
            assert not unknown, f"{path.name} sets unknown settings {unknown}"


def test_dockerfile_serves_herald_on_the_exposed_port() -> None:
    text = (INFRA / "Dockerfile").read_text()
    assert 'CMD ["herald", "serve"]' in text
    assert "HERALD_HOST=0.0.0.0" in text
    port = re.search(r"HERALD_PORT=(\d+)", text)
    assert port is not None and f"EXPOSE {port.group(1)}" in text
    assert "STOPSIGNAL SIGTERM" in text
    assert "uv sync --frozen --no-dev" in text


def test_compose_instances_share_one_nats_cluster() -> None:
    compose = yaml.safe_load((INFRA / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    heralds = [s for name, s in services.items() if name.startswith("herald-")]
    assert len(heralds) >= 2
    urls = {s["environment"]["HERALD_NATS_URL"] for s in heralds}
    assert len(urls) == 1
    for url in next(iter(urls)).split(","):
        assert url.split("//")[1].split(":")[0] in services

    haproxy = (INFRA / "compose" / "haproxy.cfg").read_text()
    for name in services:
        if name.startswith("herald-"):
            assert f"server {name} {name}:8000" in haproxy
    assert "GET /readyz" in haproxy


def test_kubernetes_grace_period_outlasts_the_drain() -> None:
    docs = list(yaml.safe_load_all((INFRA / "k8s" / "herald.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert float(env["HERALD_DRAIN_SECONDS"]) < pod["terminationGracePeriodSeconds"]
    assert container["readinessProbe"]["httpGet"]["path"] in ROUTES
    assert container["livenessProbe"]["httpGet"]["path"] in ROUTES
    # A Service named herald makes Kubernetes inject HERALD_PORT=tcp://...
    assert pod["enableServiceLinks"] is False
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
