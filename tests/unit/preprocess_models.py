"""Small models with declared preprocessing, for tests/unit/test_preprocess.py and the ensemble integration test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tritonize.generator.preprocess import ImageSteps, Preprocess, TextSteps
from tritonize.generator.source import ModelBundle

IMAGE_STEPS = ImageSteps(resize=20, center_crop=16, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "##s", "##ing", "hello", "world", ",", ".", "!"]


def tiny_cnn(steps: dict[str, Any] | None = None) -> ModelBundle:
    torch.manual_seed(0)
    image = ImageSteps(**steps) if steps else IMAGE_STEPS
    side = image.center_crop or 16
    model = nn.Sequential(nn.Conv2d(image.channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 5)).eval()
    return ModelBundle(model, example_inputs={"input": torch.rand(2, image.channels, side, side)},
                       output_names=["scores"], preprocess=Preprocess(image=image))


def bert_tokenizer(directory: Path) -> Any:
    """A transformers BertTokenizerFast over a vocabulary written here (no download)."""
    from transformers import BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    tokenizer.save_pretrained(str(directory))  # what a user ships: a directory AutoTokenizer reads
    return tokenizer


class BagOfTokens(nn.Module):
    def __init__(self, vocab: int, with_types: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.types = nn.Embedding(2, 8) if with_types else None
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(input_ids)
        if self.types is not None and token_type_ids is not None:
            x = x + self.types(token_type_ids)
        mask = attention_mask.unsqueeze(-1).float()
        return self.head((x * mask).sum(1) / mask.sum(1).clamp(min=1.0))


def bag_of_tokens(directory: str, padding: str = "longest", max_length: int = 12, types: bool = True) -> ModelBundle:
    torch.manual_seed(0)
    tokenizer = bert_tokenizer(Path(directory))
    names = ["input_ids", "attention_mask", *(["token_type_ids"] if types else [])]
    example = tokenizer(["the cat sat", "hello world"], padding="max_length" if padding == "max_length" else True,
                        truncation=True, max_length=max_length, return_tensors="pt")
    width = max_length if padding == "max_length" else -1
    return ModelBundle(BagOfTokens(tokenizer.vocab_size, types).eval(), example_inputs={n: example[n] for n in names},
                       input_dims={n: [width] for n in names}, output_names=["logits"], labels=["a", "b", "c"],
                       preprocess=Preprocess(text=TextSteps(tokenizer=tokenizer, max_length=max_length,
                                                            padding=padding)))


def bert_tokens(directory: str) -> ModelBundle:
    """A transformers BertModel returning token embeddings (last_hidden_state, pooler_output), with its tokenizer."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = bert_tokenizer(Path(directory))
    model = BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                 vocab_size=tokenizer.vocab_size, max_position_embeddings=32)).eval()
    example = tokenizer(["the cat sat", "hello world , the dog ran"], padding=True, return_tensors="pt")
    return ModelBundle(model, example_inputs=dict(example),
                       preprocess=Preprocess(text=TextSteps(tokenizer=tokenizer, max_length=16)))
