"""Inference form of a static network: the same function, fewer and cheaper ops.

:func:`optimize_for_inference` rewrites a copy of a static model (or of one of its blocks) for deployment:

- every conv - BatchNorm pair of a :class:`~supernet.layers.ConvBnAct` becomes one conv with the
  normalisation folded into its weight and bias (eval-mode statistics);
- the 1x1 convs that run on pooled (B, C, 1, 1) maps (squeeze-excite and the head's mix) become
  :class:`PooledPointwise`, a matrix product instead of a general convolution;
- a relative-position bias becomes the constant (heads, n, n) tensor it evaluates to;
- the scales of a transformer block's residual branches are folded into the last linear of each branch;
- 4-d weights are stored channels-last, so every convolution of the network runs in that layout;
- dropout and drop-path (stochastic depth) layers, identities in eval mode, become ``nn.Identity``.

The result computes the same outputs up to float rounding (tested to 1e-5) and is for inference only: it
has no BatchNorm to train and its state dict no longer matches the exported ``model.safetensors``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import Tensor, nn

from supernet.blocks import TransformerBlock
from supernet.layers import ConvBnAct, LayerScale, MBPoolHead, RelativePositionBias, SqueezeExcite


class PooledPointwise(nn.Module):
    """A 1x1 conv on a pooled map as a matrix product: (B, C_in, 1, 1) -> (B, C_out, 1, 1).

    Holds the conv's weight flattened to (C_out, C_in) and its optional bias.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().flatten(1).clone())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.flatten(1), self.weight, self.bias)[:, :, None, None]


class ConstantBias(nn.Module):
    """The value of a :class:`~supernet.layers.RelativePositionBias`, computed once: returns (heads, n, n)."""

    def __init__(self, bias: RelativePositionBias):
        super().__init__()
        self.register_buffer("value", bias().detach().contiguous())

    def forward(self) -> Tensor:
        return self.value


def fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv computing ``bn(conv(x))`` with ``bn``'s running statistics: weight and bias rescaled per channel
    (computed in float32, stored in the conv's dtype).

    Raises:
        ValueError: ``bn`` has no affine parameters or no running statistics.
    """
    if not bn.affine or bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"cannot fold {bn}: folding needs an affine BatchNorm with running statistics")
    scale = bn.weight.float() / torch.sqrt(bn.running_var.float() + bn.eps)  # (C_out,)
    bias = conv.bias.float() if conv.bias is not None else torch.zeros_like(scale)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        fused.weight.copy_(conv.weight.float() * scale[:, None, None, None])
        fused.bias.copy_((bias - bn.running_mean.float()) * scale + bn.bias.float())
    return fused


def _fold_branch_scales(block: TransformerBlock) -> None:
    """In place, under ``no_grad``: scale the output rows of each residual branch's last linear by the branch's
    :class:`LayerScale` (attention: ``proj``; both MLPs: ``fc2``, which share one scale) and drop the scales."""
    for scale, linears in ((block.scale_attn, (block.attn.proj,)), (block.scale_mlp, (block.mlp1.fc2, block.mlp2.fc2))):
        for linear in linears:
            linear.weight.mul_(scale.weight[:, None])
            if linear.bias is not None:
                linear.bias.mul_(scale.weight)
    block.scale_attn, block.scale_mlp = nn.Identity(), nn.Identity()


@torch.no_grad()
def optimize_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` (a :class:`~supernet.NASViT` or one of its blocks, built from standard
    layers) rewritten as described in the module docstring; ``model`` is left untouched.

    Raises:
        TypeError: ``model`` holds elastic supernet ops (export the subnet first).
    """
    if any(type(m).__module__ == "supernet.elastic" for m in model.modules()):
        raise TypeError("optimize_for_inference takes a static model; export the subnet from the supernet first")
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        if isinstance(module, ConvBnAct) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv, module.bn = fold_batch_norm(module.conv, module.bn), nn.Identity()
        elif isinstance(module, SqueezeExcite):
            module.reduce, module.expand = PooledPointwise(module.reduce), PooledPointwise(module.expand)
        elif isinstance(module, MBPoolHead) and module.pool and isinstance(module.mix, nn.Conv2d):  # a pooled 1x1
            module.mix = PooledPointwise(module.mix)
        elif isinstance(module, TransformerBlock) and isinstance(module.scale_attn, LayerScale):
            _fold_branch_scales(module)
        for name, child in list(module.named_children()):
            if isinstance(child, RelativePositionBias):
                setattr(module, name, ConstantBias(child))
            elif isinstance(child, (DropPath, nn.Dropout)):
                setattr(module, name, nn.Identity())
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.to(memory_format=torch.channels_last)
