"""Quantization settings (``[models.<m>.<int8 format>.quantization]``), readable without torch."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SpecError

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QUANTIZABLE_MODULES = ("Linear", "LSTM", "GRU")  # torchscript-int8: torch.ao dynamic quantization


@dataclass(frozen=True)
class Quantization:
    method: str = "dynamic"  # onnx-int8: dynamic | static; torchscript-int8: dynamic
    per_channel: bool | None = None  # None: build per-tensor and per-channel, keep the one the gate judges better
    op_types: tuple[str, ...] = ()  # ONNX op types to quantize (empty: default_op_types(method))
    nodes_to_exclude: tuple[str, ...] = ()
    calibration: str = "minmax"  # static: minmax | entropy | percentile
    calibration_samples: int = 128
    calibration_data: str | None = None  # .npz of input arrays, or "module:function" yielding input dicts
    modules: tuple[str, ...] = ("Linear", "LSTM", "GRU")  # torchscript-int8: module types to quantize

    def __post_init__(self) -> None:
        if self.method not in ("dynamic", "static"):
            raise SpecError("quantization.method", self.method, "dynamic or static")
        if self.per_channel is not None and not isinstance(self.per_channel, bool):
            raise SpecError("quantization.per_channel", self.per_channel, "true, false, or unset (measure both)")
        if self.calibration not in CALIBRATION_METHODS:
            raise SpecError("quantization.calibration", self.calibration, "one of " + ", ".join(CALIBRATION_METHODS))
        if isinstance(self.calibration_samples, bool) or self.calibration_samples < 1:
            raise SpecError("quantization.calibration_samples", self.calibration_samples, "an integer >= 1")
        for name in self.modules:
            if name not in QUANTIZABLE_MODULES:
                raise SpecError("quantization.modules", name, "Linear, LSTM or GRU")
        object.__setattr__(self, "op_types", tuple(self.op_types))
        object.__setattr__(self, "nodes_to_exclude", tuple(self.nodes_to_exclude))
        object.__setattr__(self, "modules", tuple(self.modules))
