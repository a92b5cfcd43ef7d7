"""tritonize's stand-in backends: one Python-based backend file for every backend in the format registry.

The launcher links this file as ``<backend-directory>/<backend>/model.py``; the model's config names the
backend, and the registry names the stand-in class that runs it (tritonize/deploy/standins/). The launcher
passes its Python environment in TRITONIZE_SITE_DIRS: the stub's interpreter ignores PYTHONPATH, and those
directories must come before any other site-packages on the stub's path.
"""

import json
import os
import site
import sys

# Before anything starts torch's OpenMP runtime (check's TorchScript reader does, at load): idle pool threads
# sleep instead of spinning. The native backend runs torch inside the server process; a stand-in hands every
# batch over to that process, whose work a spinning pool starves (measured at concurrency 16 on 2 cores:
# +18 % digits_torchscript, +31 % sequence_torchscript throughput).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_before = list(sys.path)
for _entry in os.environ.get("TRITONIZE_SITE_DIRS", "").split(os.pathsep):
    if _entry:
        site.addsitedir(_entry)
sys.path[:] = [p for p in sys.path if p not in _before] + _before

from tritonize.deploy.standins import standin_for  # noqa: E402


class TritonPythonModel:
    """What Triton instantiates: the registry's stand-in for the model's backend does the work."""

    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        """Called only when auto-complete is on (tritonserver's default); the stand-in fills in what its native
        backend fills in. The config object hands out its dict itself, which the stub sends back to Triton."""
        config = auto_complete_model_config.as_dict()
        with open("/proc/self/cmdline", "rb") as cmdline:  # the stub's first argument: the version's model file
            model_file = cmdline.read().split(b"\0")[1].decode()
        standin_for(config).auto_complete(config, model_file)
        return auto_complete_model_config

    def initialize(self, args):
        self.standin = standin_for(json.loads(args["model_config"]))()
        self.standin.initialize(args)

    def execute(self, requests):
        return self.standin.execute(requests)

    def finalize(self):
        self.standin.finalize()
