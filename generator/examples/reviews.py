"""Example 3: strings in, classes out. A review classifier served behind its tokenizer (a Triton ensemble).

The reviews are generated in code: a template of neutral words around sentiment words, and the class is the
sentiment that occurs most (negative, neutral, positive). The tokenizer is a Hugging Face ``tokenizers`` WordLevel
tokenizer over that vocabulary, with BERT's normalizer, pre-tokenizer and [CLS] ... [SEP] template, built in
code. The model (embeddings, mean over the attention mask, an MLP) trains in about a second. The tokenizer and
its padding/truncation are declared once (``PREPROCESS``): training tokenizes through it, and the build serves
and proves the same steps in ``reviews_preprocess``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..preprocess import Preprocess, TextSteps
from ..preprocess.reference import text_reference
from ..source import ModelBundle
from ._training import deterministic, train_classifier

LABELS = ["negative", "neutral", "positive"]
WORDS = {
    0: ["awful", "broken", "slow", "terrible", "useless", "disappointing", "cheap", "noisy"],
    1: ["okay", "average", "fine", "ordinary", "acceptable", "standard"],
    2: ["great", "excellent", "fast", "wonderful", "reliable", "sturdy", "brilliant", "quiet"],
}
FILLER = ["the", "this", "product", "was", "is", "really", "and", "it", "arrived", "box", "battery", "screen",
          "quite", "very", "after", "a", "week", "my", "phone", "i", "think", "overall", "honestly"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
MAX_LENGTH = 48


def make_tokenizer() -> Any:  # a tokenizers.Tokenizer
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    words = sorted({w for ws in WORDS.values() for w in ws} | set(FILLER) | {".", ",", "!"})
    vocab = {token: i for i, token in enumerate(SPECIALS + words)}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]")
    return tokenizer


def make_reviews(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """(texts, labels): each review mixes one to three sentiment words; the class has the strict majority."""
    rng = np.random.default_rng(seed)
    texts, labels = [], np.empty(count, dtype=np.int64)
    for i in range(count):
        label = int(rng.integers(0, 3))
        other = int(rng.choice([c for c in range(3) if c != label]))
        picks = [label] * int(rng.integers(1, 3)) + ([other] if rng.random() < 0.5 else [])
        picks = [*picks, label] if picks.count(label) <= picks.count(other) else picks
        words = [str(rng.choice(FILLER)) for _ in range(int(rng.integers(3, 12)))]
        for c in picks:
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(WORDS[c])))
        text = " ".join(words)
        texts.append(text[0].upper() + text[1:] + str(rng.choice([".", "!", ""])))
        labels[i] = label
    return texts, labels


class ReviewClassifier(nn.Module):
    def __init__(self, vocab: int, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, len(LABELS)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)


def build_review_classifier(epochs: int = 6, seed: int = 0) -> ModelBundle:
    tokenizer = make_tokenizer()
    steps = TextSteps(tokenizer=tokenizer, max_length=MAX_LENGTH)
    tokenize, _ = text_reference(steps, tokenizer)  # training tokenizes through the declared steps
    texts, labels = make_reviews(1500, seed)
    batch = tokenize(texts)
    with deterministic(seed) as gen:
        model = train_classifier(ReviewClassifier(tokenizer.get_vocab_size()),
                                 (torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"])),
                                 torch.from_numpy(labels), epochs=epochs, batch_size=32, lr=1e-2, generator=gen)
    example = tokenize(texts[:2])

    def evaluation() -> tuple[dict[str, np.ndarray], np.ndarray]:  # held out: reviews of a seed training never used
        held_out, held_out_labels = make_reviews(360, seed + 2)
        tokens = tokenize(held_out)
        return {k: tokens[k] for k in ("input_ids", "attention_mask")}, held_out_labels

    return ModelBundle(model, example_inputs={k: example[k] for k in ("input_ids", "attention_mask")},
                       input_dims={"input_ids": [-1], "attention_mask": [-1]}, output_names=["logits"],
                       labels=LABELS, preprocess=Preprocess(text=steps, samples=make_reviews(64, seed + 1)[0]),
                       evaluation=evaluation)
