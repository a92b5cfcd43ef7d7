"""tritonize.client.bench: measure a served model under load (built-in generator or perf_analyzer) and gate an SLA."""
