"""Random training-time augmentation of image batches, drawn from a given generator."""

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class RandomCropFlip:
    """Random crop after zero padding, and a random horizontal flip (the CIFAR-10 recipe).

    Each image of a (batch, channels, height, width) batch is padded by ``padding``
    pixels of zeros on every side, cropped back to its size at a random offset, and
    mirrored left-right with probability one half. The inputs are already normalized,
    so the padding holds the channel mean.

    Parameters
    ----------
    padding : int (default: 4)
        Largest shift, in pixels, in each direction.
    """

    padding: int = 4

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, channels, height, width = images.shape
        padded = F.pad(images, (self.padding,) * 4)
        device = images.device  # the draws come from ``generator``, on the CPU, whatever the images' device
        top = torch.randint(0, 2 * self.padding + 1, (batch,), generator=generator).to(device)
        left = torch.randint(0, 2 * self.padding + 1, (batch,), generator=generator).to(device)
        flip = (torch.rand(batch, generator=generator) < 0.5).to(device)
        rows = top[:, None] + torch.arange(height, device=device)
        columns = torch.arange(width, device=device).expand(batch, width)
        columns = torch.where(flip[:, None], columns.flip(1), columns) + left[:, None]
        return padded[
            torch.arange(batch, device=device)[:, None, None, None],
            torch.arange(channels, device=device)[None, :, None, None],
            rows[:, None, :, None],
            columns[:, None, None, :],
        ]
