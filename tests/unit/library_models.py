"""Hugging Face and torchvision models as a user returns them, built from configs with random weights.

Used as callable sources (``library_models:bert``). Nothing is downloaded: vocabularies and sentences are
generated here. ``torchvision_cpu.apply()`` runs before transformers or torchvision is imported, because CLI
subprocesses do not go through conftest.
"""

from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torchvision_cpu

torchvision_cpu.apply()

from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()  # the temporary checkpoint's save/load bars

WORDS = [f"w{i}" for i in range(40)]
SENTENCES = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(3 + i % 9)) for i in range(6)]
HIDDEN = 32
IMAGE = 32  # pixels a side: resnet18 and mobilenet_v3_small end at 1x1, as at 224 they end at 7x7


@functools.cache
def _vocab_dir() -> Path:
    """A WordPiece vocabulary of the generated words, written once per process."""
    directory = Path(tempfile.mkdtemp(prefix="tritonize-vocab-"))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (directory / "vocab.txt").write_text("\n".join(specials + WORDS) + "\n")
    return directory


def tokenizer() -> Any:
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab_file=str(_vocab_dir() / "vocab.txt"))


def _encode(pairs: bool = False) -> dict[str, torch.Tensor]:
    """Two padded sentences (the first of different lengths); with ``pairs`` sentence B sets token_type_ids."""
    tok = tokenizer()
    if pairs:
        return dict(tok(SENTENCES[:2], SENTENCES[2:4], padding=True, return_tensors="pt"))
    return dict(tok(SENTENCES[:2], padding=True, return_tensors="pt"))


def _bert_config() -> Any:
    from transformers import BertConfig

    return BertConfig(hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      vocab_size=len(WORDS) + 5, max_position_embeddings=64)


def bert() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """BertModel: input_ids, attention_mask, token_type_ids in; ModelOutput (last_hidden_state, pooler_output)."""
    from transformers import BertModel

    torch.manual_seed(0)
    return BertModel(_bert_config()), _encode(pairs=True)


def bert_without_mask() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Keyword inputs that skip one of forward's: input_ids and token_type_ids, no attention_mask."""
    model, example = bert()
    return model, {k: example[k] for k in ("input_ids", "token_type_ids")}


def distilbert() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """DistilBertModel: input_ids and attention_mask (it has no token_type_ids)."""
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    config = DistilBertConfig(dim=HIDDEN, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=len(WORDS) + 5,
                              max_position_embeddings=64)
    example = _encode()
    return DistilBertModel(config), {k: example[k] for k in ("input_ids", "attention_mask")}


@functools.cache
def _bert_dir() -> Path:
    from transformers import BertModel

    torch.manual_seed(0)
    directory = Path(tempfile.mkdtemp(prefix="tritonize-bert-"))
    BertModel(_bert_config()).save_pretrained(directory)
    tokenizer().save_pretrained(directory)
    return directory


def sentence_encoder() -> torch.nn.Module:
    """A SentenceTransformer with mean pooling, returned as is (its forward takes one dict)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    torch.manual_seed(0)
    transformer = Transformer(str(_bert_dir()), max_seq_length=32)
    return SentenceTransformer(modules=[transformer, Pooling(HIDDEN, "mean")], device="cpu")


def sentence_encoder_with_example() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    model = sentence_encoder()
    return model, dict(model.preprocess(SENTENCES[:2]))


def _reestimated(model: torch.nn.Module, size: int) -> torch.nn.Module:
    """Random weights, BatchNorm statistics averaged over random images, so outputs are not degenerate."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average
    model.train()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, size, size, generator=generator))
    return model.eval()


def resnet18() -> tuple[torch.nn.Module, torch.Tensor]:
    from torchvision.models import resnet18 as build

    torch.manual_seed(0)
    return _reestimated(build(num_classes=10), IMAGE), torch.randn(1, 3, IMAGE, IMAGE)


def mobilenet_v3_small() -> tuple[torch.nn.Module, torch.Tensor]:
    from torchvision.models import mobilenet_v3_small as build

    torch.manual_seed(0)
    return _reestimated(build(num_classes=10), IMAGE), torch.randn(1, 3, IMAGE, IMAGE)


class _UserBranch(torch.nn.Module):
    """The user's own data-dependent branch: tracing warns (a TracerWarning from this file), outputs still match."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().sum() >= 0:  # always true: the trace's constant branch is the right one
            return self.lin(x)
        return -self.lin(x)


def user_branch() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return _UserBranch(), torch.randn(2, 4)


def sentence_tokenizer() -> Any:
    """The SentenceTransformer's own tokenizer (what its ensemble's preprocessing serves)."""
    return sentence_encoder().tokenizer
