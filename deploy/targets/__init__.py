"""Deployment assets for a model repository (``tritonize deploy``): ``plan`` reads what the repository says,
one module per target writes its files; ``write`` stages them and renames the folder into place."""
