"""Layer factories: the same block builders make a supernet (elastic ops) or a static model (standard layers).

:class:`LayerOps` names what a builder may ask for; :class:`StaticOps` and :class:`ElasticOps` answer it side by side,
so each standard layer of an exported model sits next to the elastic op that holds its weights in the supernet.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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


@runtime_checkable
class LayerOps(Protocol):
    """The layer factories of :mod:`supernet.builders`; the builders pass the class itself (every member is static)."""

    def conv(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, group_size: int | None = None, bias: bool = False
    ) -> nn.Module:
        """'same'-padded conv, (B, in_ch, H, W) -> (B, out_ch, H / stride, W / stride); dense, or grouped with
        ``group_size`` channels per group (1: depthwise), which keeps in_ch."""

    def shortcut_conv(self, in_ch: int, out_ch: int) -> nn.Module:
        """1x1 conv of an MBConv shortcut, (B, in_ch, H, W) -> (B, out_ch, H, W)."""

    def batch_norm(self, channels: int) -> nn.Module:
        """BatchNorm over (B, channels, H, W)."""

    def linear(self, in_features: int, out_features: int, bias: bool = True) -> nn.Module:
        """(..., in_features) -> (..., out_features)."""

    def head_mix(self, heads_in: int, heads_out: int) -> nn.Module:
        """Talking-heads mix, (B, heads_in, n, m) -> (B, heads_out, n, m)."""

    def conv_bn_act(self, conv: nn.Module, bn: nn.Module, act: nn.Module) -> nn.Module:
        """conv - BN - activation."""

    def optional_conv_bn_act(self, conv: nn.Module, bn: nn.Module, act: nn.Module) -> nn.Module:
        """conv - BN - activation that a subnet may skip (an MBConv expand with ratio 1)."""

    def layer_norm(self, channels: int, eps: float, over_tokens: bool) -> nn.Module:
        """LayerNorm over the channels of (B, N, channels), or over tokens and channels with ``over_tokens``."""

    def scale(self, channels: int, keys: list[str], init: float, reference_factor: bool) -> nn.Module:
        """Per-channel scale of a residual branch, (..., channels) -> (..., channels); one vector per key."""

    def position_bias(self, window: tuple[int, int], table_size: int, heads: int) -> nn.Module:
        """Relative-position bias of a window, () -> (heads, n, n); the table covers a ``table_size`` map."""


class StaticOps:
    """Standard PyTorch layers sized exactly for one subnet."""

    @staticmethod
    def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, group_size: int | None = None, bias: bool = False):
        groups = 1 if group_size is None else in_ch // group_size
        return nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=bias)

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
