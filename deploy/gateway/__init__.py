"""``tritonize gateway``: a FastAPI front door generated from a model repository (``create_app``); no model is
ever loaded here, every request goes to Triton through one async typed client per process."""

from .app import create_app
from .routes import ModelRoute, read_routes

__all__ = ["ModelRoute", "create_app", "read_routes"]
