"""Example 4: PNG bytes in, a class out. A digit classifier served behind its image preprocessing (an ensemble).

scikit-learn's 8x8 digits (shipped inside scikit-learn) are drawn as colour PNG images of different sizes,
colours and margins; the preprocessing training uses is declared once (``STEPS``: decode, Resize(36),
CenterCrop(32), ToTensor, Normalize), applied to the PNG bytes by ``image_transform`` for training, and served and
proven bit for bit by the build in ``glyphs_preprocess``. The CNN trains in a few seconds.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from ..preprocess import ImageSteps, Preprocess
from ..preprocess.reference import decode, image_transform
from ..source import ModelBundle
from ._training import deterministic, train_classifier

STEPS = ImageSteps(resize=36, center_crop=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def draw(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """One 8x8 digit (values 0..16) as a PNG: scaled to 24-44 px, coloured, with a margin of 2-8 px."""
    from PIL import Image

    side, margin = int(rng.integers(24, 45)), int(rng.integers(2, 9))
    ink, paper = rng.integers(0, 110, 3), rng.integers(150, 256, 3)  # dark ink of any hue on light paper
    if rng.random() < 0.5:  # or light on dark
        ink, paper = paper, ink
    scaled = Image.fromarray((digit * 15).astype(np.uint8)).resize((side, side), Image.Resampling.BILINEAR)
    alpha = np.asarray(scaled) / 255.0
    pixels = paper + alpha[..., None] * (ink.astype(float) - paper)
    canvas = np.empty((side + 2 * margin, side + 2 * margin, 3))
    canvas[:] = paper
    canvas[margin:-margin, margin:-margin] = pixels
    buffer = io.BytesIO()
    Image.fromarray(canvas.round().astype(np.uint8), "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def load_glyphs(seed: int = 0) -> tuple[list[bytes], np.ndarray, list[bytes], np.ndarray]:
    """(train PNGs, train labels, test PNGs, test labels): the digits' 80/20 split of the digits example."""
    from .digits import load_digits_split

    split = load_digits_split(seed)
    rng = np.random.default_rng(seed)
    train = [draw(x[0] * 16, rng) for x in split.train_x]
    test = [draw(x[0] * 16, rng) for x in split.test_x]
    return train, split.train_y, test, split.test_y


class GlyphCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


def build_glyph_classifier(epochs: int = 8, seed: int = 0) -> ModelBundle:
    train, train_y, test, test_y = load_glyphs(seed)
    transform, _ = image_transform(STEPS)  # training preprocesses the PNG bytes through the declared steps
    images = torch.stack([transform(decode(png, STEPS.mode)) for png in train])
    with deterministic(seed) as gen:
        model = train_classifier(GlyphCNN(), (images,), torch.from_numpy(train_y), epochs=epochs, batch_size=32,
                                 lr=3e-3, generator=gen)
    def evaluation() -> tuple[dict[str, np.ndarray], np.ndarray]:  # the held-out PNGs, preprocessed as in training
        return {"image": torch.stack([transform(decode(png, STEPS.mode)) for png in test]).numpy()}, test_y

    return ModelBundle(model, example_inputs={"image": images[:2]}, output_names=["logits"],
                       labels=[str(d) for d in range(10)], preprocess=Preprocess(image=STEPS, samples=test[:48]),
                       evaluation=evaluation)
