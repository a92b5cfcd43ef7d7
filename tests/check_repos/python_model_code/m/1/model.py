"""python-model-code: this file is code, and Triton runs it, as the serving user, when it loads the model.

It fails the load on purpose, naming the uid it ran as, to show that it ran: the broken-repository test serves
every case and expects this one refused.
"""

import os


class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError(f"model.py ran at load time as uid {os.geteuid()}")
