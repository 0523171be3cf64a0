"""A tiny bottom-up model and dataset for trainer tests that run in subprocesses
(DDP, SIGKILL + resume). The scripts import this module with tests/ on PYTHONPATH."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from fusepose.registry import ModelInfo

K = 2


class Toy(nn.Module):
    """Bottom-up contract at 16x16 input: (B, 2K, 4, 4) heatmaps + tags, (B, K, 8, 8)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.down = nn.Conv2d(8, 8, 3, 2, 1)
        self.q = nn.Conv2d(8, 2 * K, 1)
        self.h = nn.Conv2d(8, K, 1)
        self.info = ModelInfo(name="toy", kind="bottom_up", input_size=(16, 16), num_keypoints=K)

    def forward(self, x):
        f = self.stem(x)
        return self.q(self.down(f)), self.h(f)


class ToyData(Dataset):
    """``length`` samples with ``people`` people of K one-cell joints each; the image noise is
    drawn from the global RNG, which the trainer seeds per (seed, epoch, sample)."""

    def __init__(self, length: int, people: int):
        self.length, self.people = length, people

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        pos = torch.randint(0, 4, (self.people, K, 2), generator=g)
        img = torch.randn(3, 16, 16) * 0.1
        hq, hh = torch.zeros(K, 4, 4), torch.zeros(K, 8, 8)
        tj = torch.zeros(max(self.people, 2), K, 2, dtype=torch.int64)
        for p in range(self.people):
            for k in range(K):
                x, y = pos[p, k].tolist()
                img[k, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4] += 1
                hq[k, y, x] = 1
                hh[k, 2 * y, 2 * x] = 1
                tj[p, k] = torch.tensor([k * 16 + y * 4 + x, 1])
        return {
            "image": img,
            "heatmaps": [hq, hh],
            "masks": [torch.ones(4, 4), torch.ones(8, 8)],
            "tag_joints": tj,
        }
