"""What the monitoring pieces share, in one place: the metric names the gateway exports (request counts,
latency, output drift), which the alert rules and the dashboard query, and the drift threshold the rules and
the drift monitor agree on."""

from __future__ import annotations

# the gateway's own metrics (prometheus_client), labelled {model}; requests also {code}
GATEWAY_REQUESTS = "tritonize_gateway_requests_total"  # counter {model, code}
GATEWAY_LATENCY = "tritonize_gateway_request_duration_seconds"  # histogram {model}

# output drift against the reference distribution the build recorded, labelled {model, output}
DRIFT_PSI = "tritonize_output_drift_psi"  # gauge: population stability index over the current window
DRIFT_KS = "tritonize_output_drift_ks"  # gauge: two-sample Kolmogorov-Smirnov statistic over the window
DRIFT_WINDOW = "tritonize_output_drift_window_samples"  # gauge: samples the scores are computed on

# Triton's per-model latency summaries, off by default: every launcher (local, docker, deploy assets) passes this
# flag. Then Triton 2.51 exports nv_inference_<stage>_summary_us{model, version, quantile} for the quantiles 0.5,
# 0.9, 0.95, 0.99, 0.999 (over Triton's sliding window), plus _sum and _count (per request, in microseconds)
TRITON_SUMMARY_FLAG = "--metrics-config=summary_latencies=true"
SUMMARY_METRIC = "nv_inference_{stage}_summary_us"  # request, queue, compute_input, compute_infer, compute_output

# PSI above this is a significant shift (the usual rule of thumb: < 0.1 none, 0.1-0.2 moderate, > 0.2 shifted)
PSI_ALERT = 0.2
