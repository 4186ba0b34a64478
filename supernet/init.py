"""Weight initialisation shared by supernets and static models built from scratch."""

from __future__ import annotations

import math

import torch
from timm.layers import trunc_normal_
from torch import nn

from supernet.blocks import FusedMBConv, MBConv, TalkingHeadAttention
from supernet.elastic import ElasticRelativePositionBias
from supernet.layers import RelativePositionBias, TokenChannelLayerNorm


@torch.no_grad()
def init_weights(model: nn.Module) -> None:
    """EfficientNet-style conv init, truncated-normal linears, identity talking heads, unit norms, and a zero
    last BN gamma in every MBConv and Fused-MBConv block (each residual branch starts silent). Switchable scales keep
    the value they were built with."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            fan_out = kernel * module.out_channels // module.groups
            module.weight.normal_(0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, (nn.BatchNorm2d, nn.LayerNorm, TokenChannelLayerNorm)):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, (RelativePositionBias, ElasticRelativePositionBias)):
            trunc_normal_(module.table, std=0.02)
    for module in model.modules():
        if isinstance(module, (MBConv, FusedMBConv)):
            module.project.bn.weight.zero_()
        elif isinstance(module, TalkingHeadAttention):
            for mix in (module.talk_pre, module.talk_post):
                mix.weight.copy_(torch.eye(*mix.weight.shape))
                mix.bias.zero_()
