"""tritonize.deploy: serving — a local tritonserver with stand-in backends, the NGC image through Docker,
and deployment assets."""
