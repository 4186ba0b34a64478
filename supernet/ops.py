"""Layer factories: the same block builders make a supernet (elastic ops) or a static model (standard layers)."""

from __future__ import annotations

from torch import nn

from supernet.elastic import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticHeadMix,
    ElasticLayerNorm,
    ElasticLinear,
    ElasticRelativePositionBias,
    ElasticShortcutConv,
    SkippableConvBnAct,
    SwitchableScale,
)
from supernet.layers import ConvBnAct, HeadMix, LayerScale, RelativePositionBias, TokenChannelLayerNorm


class StaticOps:
    """Standard PyTorch layers sized exactly for one subnet."""

    @staticmethod
    def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, depthwise: bool = False, bias: bool = False):
        return nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=in_ch if depthwise else 1, bias=bias)

    @staticmethod
    def shortcut_conv(in_ch: int, out_ch: int):
        return nn.Conv2d(in_ch, out_ch, 1, bias=False)

    batch_norm = nn.BatchNorm2d
    linear = nn.Linear
    head_mix = HeadMix
    conv_bn_act = ConvBnAct
    optional_conv_bn_act = ConvBnAct

    @staticmethod
    def layer_norm(channels: int, eps: float, over_tokens: bool):
        return TokenChannelLayerNorm(channels, eps) if over_tokens else nn.LayerNorm(channels, eps)

    @staticmethod
    def scale(channels: int, keys: list[str], init: float, reference_factor: bool):
        return LayerScale(channels, init)

    @staticmethod
    def position_bias(window: tuple[int, int], table_size: int, heads: int):
        return RelativePositionBias(window[0], window[1], heads)


class ElasticOps:
    """Elastic ops holding the largest weights of every choice."""

    conv = ElasticConv2d
    batch_norm = ElasticBatchNorm2d
    linear = ElasticLinear
    head_mix = ElasticHeadMix
    conv_bn_act = ConvBnAct
    optional_conv_bn_act = SkippableConvBnAct

    @staticmethod
    def shortcut_conv(in_ch: int, out_ch: int):
        return ElasticShortcutConv(in_ch, out_ch, 1)

    @staticmethod
    def layer_norm(channels: int, eps: float, over_tokens: bool):
        return TokenChannelLayerNorm(channels, eps) if over_tokens else ElasticLayerNorm(channels, eps)

    @staticmethod
    def scale(channels: int, keys: list[str], init: float, reference_factor: bool):
        return SwitchableScale(channels, keys, init, reference_factor)

    @staticmethod
    def position_bias(window: tuple[int, int], table_size: int, heads: int):
        return ElasticRelativePositionBias(table_size, heads)
