"""The finding codes of ``tritonize check``: what each one means and how severe it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeAlias

Severity = Literal["error", "warning"]
Hit: TypeAlias = tuple[str, str]  # (code, message), before the model name and severity are attached


@dataclass(frozen=True)
class Finding:
    severity: Severity
    model: str  # model directory name, "" for repository-level findings
    code: str  # stable kebab-case id, one of CODES
    message: str  # one line: the field or tensor, the value found, what was expected


class Code(NamedTuple):
    id: str
    severity: Severity  # as tritonserver runs by default: backend auto-complete on
    rule: str  # what triggers it, and where Triton says so
    without_autocomplete: Severity | None = None  # under --disable-auto-complete-config, where that differs


CODES: tuple[Code, ...] = (
    # repository layout
    Code("repo-missing", "error", "the repository path does not exist, is not a directory, or is a model"),
    Code("staging-leftover", "error", "a staging directory a killed build left at the top level: Triton tries to "
         "load it as a model (the next build or local serve removes it)"),
    Code("config-missing", "error", "no config.pbtxt and no model file Triton can auto-complete from"),
    Code("config-autocomplete", "warning", "no config.pbtxt, or an onnxruntime config without inputs or "
         "outputs: loads only via backend auto-complete; core refuses it with --disable-auto-complete-config "
         "(model.cc Model::Init, onnxruntime.cc ValidateInputs)", "error"),
    Code("outputs-missing", "warning", "auto-complete off and an onnxruntime config without outputs: Triton "
         "loads the model with no outputs (onnxruntime.cc ValidateOutputs checks only the listed ones)"),
    Code("config-parse", "error", "not protobuf text format (line/column given; JSON-ish: server#6571)"),
    Code("scheduling-oneof", "error", "two of dynamic_batching / sequence_batching / ensemble_scheduling "
         "(oneof scheduling_choice)"),
    Code("name-mismatch", "error", "'name' differs from the directory name: Triton skips the model"),
    # backend / platform (core AutoCompleteBackendFields, ValidateModelConfig)
    Code("backend-typo", "error", "backend is a near miss of a Triton backend name (case-sensitive)"),
    Code("backend-unknown", "warning", "backend is not one Triton ships: needs a custom backend library"),
    Code("platform-unknown", "error", "platform is not a Triton platform and no backend is given"),
    Code("backend-platform-mismatch", "error", "a built-in backend paired with another backend's platform"),
    Code("backend-missing", "error", "neither backend nor platform, and no model file to infer them from"),
    # versions (model_lifecycle.cc VersionsToLoad)
    Code("version-missing", "error", "no numeric version directory (or the version policy loads none)"),
    Code("version-dir-ignored", "warning", "a subdirectory Triton ignores as a version: not a number or a "
         "leading zero (configs/, warmup/, initial_state/ are fine)"),
    Code("version-policy-missing", "warning", "version_policy.specific names a missing version directory: "
         "Triton 2.51 loads the others and that version stays unavailable (observed on the local server)"),
    Code("manifest-incomplete", "warning", "a version that tritonize-manifest.json does not record, or records "
         "with another artifact: a build was killed before its manifest write (the next build repairs it)"),
    Code("model-file-missing", "error", "a loaded version lacks its model file (default_model_filename)"),
    # inputs / outputs (ValidateIOShape)
    Code("tensor-field-missing", "error", "an input/output without name or data_type"),
    Code("tensor-autocomplete", "warning", "a python model's input/output without data_type or dims, which "
         "its model.py auto_complete_config may fill in (pb_utils add_input/add_output); core refuses it "
         "with --disable-auto-complete-config (ValidateIOShape)", "error"),
    Code("empty-dims", "error", "dims: [] — at least one dimension is required (server#7981)"),
    Code("bad-dim", "error", "a dims/reshape entry that is 0 or below -1"),
    Code("duplicate-tensor", "warning", "two inputs (or two outputs) share a name: Triton 2.51 loads the model "
         "(observed) but a request can carry only one tensor of that name"),
    Code("reshape-mismatch", "error", "reshape and dims hold different element counts, or an empty reshape "
         "on a non-batching model"),
    Code("label-file-missing", "error", "label_filename does not exist in the model directory"),
    Code("tensor-names-parameter", "error", "parameters tritonize.input_names / tritonize.output_names (the "
         "model's own tensor names, where the config uses OUTPUT__<i>) do not list one distinct name per tensor: "
         "the typed client would key results wrongly"),
    # batching and instances
    Code("bad-max-batch-size", "error", "max_batch_size is negative"),
    Code("preferred-batch-size", "error", "preferred_batch_size <= 0 or > max_batch_size"),
    Code("dynamic-batching-unbatched", "warning", "dynamic_batching with max_batch_size 0: core caps "
         "batches at max(1, max_batch_size), so nothing is ever batched"),
    Code("priority-level", "error", "default_priority_level or a priority_queue_policy key outside "
         "[1, priority_levels]"),
    Code("instance-count", "warning", "instance_group count < 1: core silently uses the default count"),
    Code("instance-gpus", "error", "a negative GPU id, or gpus on a KIND_CPU / KIND_MODEL group"),
    Code("instance-auto-gpus", "warning", "gpus on a KIND_AUTO (kind omitted) group: where a listed GPU is "
         "missing, NormalizeInstanceGroup makes it KIND_CPU and ValidateInstanceGroup refuses gpus on it"),
    # ragged batching (model_config_utils.cc ValidateBatchIO)
    Code("batch-input", "error", "a batch_input without exactly one source_input, with a source that is "
         "not an input, or with a data_type other than TYPE_INT32 / TYPE_FP32"),
    Code("batch-output", "error", "a batch_output without exactly one source_input, with a source that is "
         "not an input, or a target_name that is not an output or is given twice"),
    # sequence batching (ValidateModelConfig; sequence_batch_scheduler.cc GenerateInitialStateData)
    Code("sequence-control", "error", "a control_input without name or listed twice, a control kind given "
         "twice, START/END/READY without exactly one 2-entry *_false_true, a CORRID with a *_false_true or "
         "a data_type other than TYPE_UINT64/INT64/UINT32/INT32/STRING"),
    Code("sequence-strategy", "error", "sequence_batching.direct.minimum_slot_utilization outside [0, 1]"),
    Code("sequence-state", "error", "a state's initial_state: more than one, a data_type, dims or rank that "
         "differ from the state's, a -1, no name, no data, or a data_file missing from initial_state/ or "
         "too small"),
    # ONNX Runtime (onnxruntime_backend ValidateInputs / ValidateOutputs / CompareDimsSupported)
    Code("model-unreadable", "error", "the ONNX / TorchScript file cannot be loaded"),
    Code("reader-missing", "warning", "the model file was not checked: the package that reads it (onnx, "
         "torch) is not installed"),
    Code("onnx-ir-too-new", "error", "the ONNX file's IR version is above what the target release's ONNX Runtime "
         "reads (check --triton-version, default 24.10; tritonize/core/releases.py)"),
    Code("onnx-opset-too-new", "error", "the ONNX file imports an ai.onnx opset above what the target release's "
         "ONNX Runtime reads (ValidateOpsetForDomain)"),
    Code("onnx-unknown-tensor", "error", "a configured input/output that the ONNX graph does not have"),
    Code("onnx-input-missing", "error", "an ONNX graph input that the configuration does not list"),
    Code("onnx-dtype", "error", "configured data_type differs from the ONNX element type"),
    Code("onnx-control-input", "error", "a sequence control tensor the ONNX graph lacks, or whose model shape "
         "(less the batch dimension) is not [1] or whose element type differs from the control's "
         "(onnxruntime.cc ValidateBooleanSequenceControl / ValidateTypedSequenceControl)"),
    Code("onnx-input-count", "error", "inputs (less optional ones) + batch inputs + control kinds + states "
         "differ in number from the ONNX graph's inputs, e.g. a batch_input target named like an input "
         "(onnxruntime.cc ValidateInputs)"),
    Code("onnx-optional-input", "error", "an optional input with max_batch_size > 0, with allow_ragged_batch, or "
         "that is a required graph input rather than an initializer: the onnxruntime backend refuses it"),
    Code("onnx-ragged-shape", "error", "an allow_ragged_batch input whose ONNX shape is not [-1]"),
    Code("batch-dim-in-dims", "error", "max_batch_size > 0 and dims already include the batch dimension "
         "(server#1545, server#6529)"),
    Code("fixed-batch-dim", "error", "max_batch_size > 0 but the model's first dimension is fixed "
         "(server#2387)"),
    Code("rank-mismatch", "error", "configured rank (plus the batch dimension) differs from the model rank"),
    Code("dim-mismatch", "error", "a fixed model dimension that the configuration does not give exactly"),
    Code("max-batch-size-autofill", "warning", "max_batch_size 0/omitted, I/O left to auto-complete and "
         "every tensor batchable: ORT sets max_batch_size 4 and dynamic batching (onnxruntime_backend "
         "PR #36, server PR #4395)"),
    Code("trt-precision-mode", "error", "TensorRT accelerator precision_mode not FP32/FP16/BF16/INT8"),
    Code("trt-int8-calibration", "error", "TensorRT INT8 with neither Q/DQ nodes nor a calibration table, "
         "or with both"),
    # PyTorch (pytorch_backend ValidateInputs / ValidateOutputs / GetNamingConvention)
    Code("torch-output-name", "error", "a TorchScript output not named <name>__<index>: mapped by position, "
         "labels can swap"),
    Code("torch-input-name", "error", "a TorchScript input that is neither a forward() argument nor "
         "<name>__<index> (or whose index is out of range)"),
    Code("torch-mixed-naming", "warning", "inputs mix forward() names and <name>__<index>: config order"),
    Code("torch-input-count", "error", "inputs + batch inputs + control kinds + states differ in number from "
         "forward()'s arguments"),
    Code("torch-batched-strings", "warning", "a TorchScript TYPE_STRING output with max_batch_size > 0: the r24.10 "
         "pytorch backend hands every request of a batch the first request's strings"),
    Code("torch-sequence-naming", "error", "a sequence-batching TorchScript model whose inputs, outputs, state "
         "or control tensors are not all <name>__<index> (forward() argument names are refused there: "
         "libtorch.cc GetNamingConvention, ValidateBooleanSequenceControl)"),
    Code("torch-control-dtype", "error", "a CORRID control of a type PyTorch lacks (TYPE_UINT64, TYPE_UINT32, "
         "TYPE_STRING: libtorch.cc ValidateTypedSequenceControl)"),
    Code("torchscript-too-new", "error", "the TorchScript archive's file format version is above what the target "
         "release's PyTorch reads (kMaxSupportedFileFormatVersion)"),
    # python backend
    Code("python-model-code", "warning", "a python-backend version's model.py holds code: Triton imports and "
         "runs it in a stub process with the serving user's rights (root, if the server runs as root)"),
    # optimization and warmup
    Code("cuda-graphs-ignored", "warning", "optimization.cuda.graphs on a backend other than tensorrt"),
    Code("warmup-file-missing", "error", "model_warmup input_data_file missing from <model>/warmup/"),
    Code("warmup-batch-size", "error", "model_warmup batch_size above max_batch_size (above 1 if it is 0)"),
    Code("warmup-unknown-input", "error", "model_warmup names an input the configuration does not have"),
    Code("warmup-input-invalid", "error", "a warmup input with no data source, a -1 dimension, or a data "
         "file smaller than its dims need (core GenerateWarmupData)"),
    # ensembles (ValidateEnsembleSchedulingConfig)
    Code("ensemble-unknown-model", "error", "an ensemble step names a model that is not in the repository"),
    Code("ensemble-output-unwritten", "error", "an ensemble output that no step produces (server#3198)"),
    Code("ensemble-step-io", "error", "a step maps a tensor its model does not have"),
    Code("ensemble-structure", "error", "ensemble rules: steps and their maps present, every input used, "
         "no backend / instance_group / optimization / model_warmup, platform matches ensemble_scheduling"),
)
SEVERITY: dict[str, Severity] = {c.id: c.severity for c in CODES}
_WITHOUT_AUTOCOMPLETE = {c.id: c.without_autocomplete for c in CODES if c.without_autocomplete}

# What the native onnxruntime / pytorch backends themselves refuse when they load a model. The local
# stand-in backends (tritonize.deploy) apply exactly these rules, so a repository fails there as it fails in
# the NGC image. Not among them: torch-output-name and torch-input-name (the native backend maps such names by
# position / config order: check flags them, the stand-in serves them as the NGC image does) and reader-missing
# (a gap in tritonize's environment, not in the model).
BACKEND_LOAD_CODES = frozenset({
    "model-file-missing", "model-unreadable", "onnx-unknown-tensor", "onnx-input-missing", "onnx-dtype",
    "onnx-optional-input", "onnx-ragged-shape", "batch-dim-in-dims", "fixed-batch-dim", "rank-mismatch",
    "dim-mismatch", "torch-input-count", "onnx-control-input", "onnx-input-count", "torch-sequence-naming",
    "torch-control-dtype", "onnx-ir-too-new", "onnx-opset-too-new", "torchscript-too-new",
})


def severity(code: str, autocomplete: bool = True) -> Severity:
    """How severe ``code`` is on a server with backend auto-complete on (tritonserver's default) or off."""
    return SEVERITY[code] if autocomplete else _WITHOUT_AUTOCOMPLETE.get(code, SEVERITY[code])


def finding(model: str, hit: Hit, autocomplete: bool = True) -> Finding:
    code, message = hit
    return Finding(severity(code, autocomplete), model, code, message)
