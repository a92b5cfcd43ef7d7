"""The images the assets build: Triton with the python-backend models' requirements installed (derived from the
NGC image), and the gateway (python slim + tritonize[gateway] of this version)."""

from __future__ import annotations

from .plan import GATEWAY_PORT, MOUNT, PORTS, Plan

GATEWAY_BASE = "python:3.11-slim"


def triton_files(plan: Plan, folder: str) -> dict[str, str]:
    """``folder/Dockerfile`` + ``folder/requirements.txt`` when python-backend models need packages, else nothing."""
    if not plan.requirements:
        return {}
    dockerfile = (f"# Triton {plan.release.name} with what the python-backend models "
                  f"({', '.join(plan.python_models)}) import.\n"
                  "# Their requirements.txt pin the versions the build proved the steps with; the image's own\n"
                  "# packages (e.g. another Pillow) are replaced by these: check the image still serves.\n"
                  f"FROM {plan.image}\n"
                  "COPY requirements.txt /opt/tritonize/requirements.txt\n"
                  "RUN pip install --no-cache-dir -r /opt/tritonize/requirements.txt\n")
    return {f"{folder}/Dockerfile": dockerfile,
            f"{folder}/requirements.txt": "".join(f"{r}\n" for r in plan.requirements)}


def triton_image(plan: Plan) -> str:
    """The image the server runs: --image, else the NGC one, or the derived one when python-backend models need
    packages (built locally by compose; for Kubernetes, push it and pass its name as --image)."""
    if plan.options.image:
        return plan.options.image
    return f"tritonize-triton:{plan.release.name}-py3" if plan.requirements else plan.image


def gateway_command(triton_host: str) -> list[str]:
    return ["tritonize", "gateway", MOUNT, "--url", f"{triton_host}:{PORTS['grpc']}", "--host", "0.0.0.0",
            "--port", str(GATEWAY_PORT)]


def gateway_dockerfile(plan: Plan) -> str:
    return (f"FROM {GATEWAY_BASE}\n"
            f'RUN pip install --no-cache-dir "tritonize[gateway]=={plan.version}"\n'
            "USER 1000:1000\n"
            f"EXPOSE {GATEWAY_PORT}\n")
