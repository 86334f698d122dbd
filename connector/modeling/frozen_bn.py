"""Frozen BatchNorm whose training pass is one fused multiply-add.

detectron2's ``FrozenBatchNorm2d`` computes ``x * scale + bias`` when gradients flow through it:
two passes over the feature map forward, two more backward. ``torch.addcmul`` does the same
affine transform in one pass each way. On 2 cores, a 4x96x112x136 channels-last map took 10 ms
forward and backward against 19 ms, and a `fast` training step on bccd (4 images, forward and
backward) 1.68 s against 1.75 s, interleaved three times. Same buffers and state-dict keys, so
weights load either way; without gradients (frozen stages, inference, export) it is detectron2's
fused ``F.batch_norm`` as before.
"""
from __future__ import annotations

import torch
from detectron2.layers import FrozenBatchNorm2d

__all__ = ["FusedFrozenBatchNorm2d"]


class FusedFrozenBatchNorm2d(FrozenBatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.requires_grad:
            return super().forward(x)
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return torch.addcmul(bias.reshape(1, -1, 1, 1).to(x.dtype), x, scale.reshape(1, -1, 1, 1).to(x.dtype))
