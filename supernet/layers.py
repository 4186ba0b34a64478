"""Static building blocks shared by the supernet and its exported twins.

The supernet builds these containers around elastic ops (:mod:`supernet.elastic`); an exported model
builds the same containers around standard ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.Linear`` layers.
Nothing here slices weights (:func:`resize_position_table` makes a table for another window, for loading).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from timm.layers import resize_rel_pos_bias_table
from torch import Tensor, nn


def make_activation(name: str) -> nn.Module:
    """``swish`` | ``relu`` | ``hswish`` | ``gelu`` as a module."""
    activations = {"swish": nn.SiLU, "relu": nn.ReLU, "hswish": nn.Hardswish, "gelu": nn.GELU}
    if name not in activations:
        raise ValueError(f"activation {name!r} is not one of {sorted(activations)}")
    return activations[name]()


class ConvBnAct(nn.Module):
    """conv - BN - activation: (B, C_in, H, W) -> (B, C_out, H', W'). ``act`` may be ``nn.Identity``."""

    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """x * hard_sigmoid(expand(relu(reduce(mean_hw(x))))): (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, reduce: nn.Module, expand: nn.Module):
        super().__init__()
        self.reduce, self.expand = reduce, expand

    def forward(self, x: Tensor) -> Tensor:
        scale = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        scale = self.expand(F.relu(self.reduce(scale)))
        return x * F.hardsigmoid(scale)


class Shortcut(nn.Module):
    """Residual path of an MBConv block: average-pool when strided, then a 1x1 conv when widths differ.

    Pooling pads odd maps by one (the reference code's rule), so its output side matches the strided conv's.
    """

    def __init__(self, stride: int, conv: nn.Module | None):
        super().__init__()
        self.stride = stride
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            padding = 0 if x.shape[-1] % 2 == 0 else 1
            x = F.avg_pool2d(x, self.stride, self.stride, padding)
        if self.conv is not None:
            x = self.conv(x)
        return x


class TokenChannelLayerNorm(nn.Module):
    """LayerNorm over tokens and channels jointly with a per-channel affine (the reference code's norm).

    (B, N, C) -> (B, N, C); statistics over the last two dims.
    """

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        tokens, channels = x.shape[-2], x.shape[-1]
        weight = self.weight[:channels].expand(tokens, channels)
        bias = self.bias[:channels].expand(tokens, channels)
        return F.layer_norm(x, (tokens, channels), weight, bias, self.eps)


class LayerScale(nn.Module):
    """Learnable per-channel scale of a residual branch: (..., C) -> (..., C)."""

    def __init__(self, channels: int, init: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight


class RelativePositionBias(nn.Module):
    """Swin-style relative-position bias for one window shape: returns (heads, n, n), n = rows * cols.

    Holds a ((2 rows - 1) * (2 cols - 1), heads) table and the (n, n) index into it.
    """

    def __init__(self, rows: int, cols: int, heads: int):
        super().__init__()
        self.table = nn.Parameter(torch.zeros((2 * rows - 1) * (2 * cols - 1), heads))
        self.register_buffer("index", relative_position_index(rows, cols, rows, cols), persistent=False)

    def forward(self) -> Tensor:
        n = self.index.shape[0]
        return self.table[self.index.view(-1)].view(n, n, -1).permute(2, 0, 1)  # (heads, n, n)


def relative_position_index(rows: int, cols: int, table_rows: int, table_cols: int) -> Tensor:
    """Index (n, n) of token pairs of a rows x cols grid into a (2 table_rows - 1) x (2 table_cols - 1) table.

    Offsets (dy, dx) map to row ``(dy + table_rows - 1) * (2 table_cols - 1) + dx + table_cols - 1``, so a
    smaller grid reads the centre of a larger table: the same entries as cropping the larger grid's index.
    """
    coords = torch.stack(torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")).flatten(1)  # (2, n)
    offsets = coords[:, :, None] - coords[:, None, :]  # (2, n, n)
    return (offsets[0] + table_rows - 1) * (2 * table_cols - 1) + offsets[1] + table_cols - 1


def resize_position_table(table: Tensor, window: tuple[int, int], new_window: tuple[int, int]) -> Tensor:
    """A relative-position table for a ``window`` (rows, cols) made into one for ``new_window``, per head.

    The table is ((2 rows - 1) * (2 cols - 1), heads), row-major in the offsets (dy, dx) as
    :func:`relative_position_index` reads it. Where the new window is no larger, the result is the table's centre:
    exactly the entries of the offsets the new window has (what the supernet gives a smaller window). Where it is
    larger, the (cropped) table is resized by timm's ``resize_rel_pos_bias_table``, the rule BEiT and timm's Swin
    use to fine-tune at another window: the trained offsets are laid out on a geometric progression (offsets 0 and
    +-1 stay where they are, the outer ones spread until the outermost reaches the new extent), each head is
    interpolated linearly at the whole offsets of the new window, and offsets past the outermost take its value.

    Returns:
        ((2 new_rows - 1) * (2 new_cols - 1), heads), a new tensor.
    """
    rows, cols = window
    kept = (min(rows, new_window[0]), min(cols, new_window[1]))
    grid = table.reshape(2 * rows - 1, 2 * cols - 1, table.shape[-1])  # (2 rows - 1, 2 cols - 1, heads)
    centre = grid[rows - kept[0] : rows + kept[0] - 1, cols - kept[1] : cols + kept[1] - 1]
    cropped = centre.reshape(-1, table.shape[-1]).clone()  # ((2 kept_rows - 1) * (2 kept_cols - 1), heads)
    if kept == tuple(new_window):
        return cropped
    shape = ((2 * new_window[0] - 1) * (2 * new_window[1] - 1), table.shape[-1])
    with warnings.catch_warnings():  # torch warns about how timm's interpolator indexes; tests pin the values
        warnings.simplefilter("ignore", UserWarning)
        return resize_rel_pos_bias_table(cropped, tuple(new_window), shape, old_window_size=kept)


def mix_heads(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Talking-heads mix: a linear map across the head dim of attention maps, without moving it last.

    (B, heads_in, n, m) x weight (heads_out, heads_in) + bias (heads_out,) -> (B, heads_out, n, m).
    """
    batch, heads, n, m = x.shape
    mixed = torch.matmul(weight, x.reshape(batch, heads, n * m))  # (B, heads_out, n * m)
    return (mixed + bias[:, None]).view(batch, -1, n, m)


class HeadMix(nn.Module):
    """Talking-heads mix: (B, heads_in, n, m) -> (B, heads_out, n, m) with a (heads_out, heads_in) ``weight`` and
    a (heads_out,) ``bias``. Not an ``nn.Linear``: it maps dim 1, not the last dim."""

    def __init__(self, heads_in: int, heads_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(heads_out, heads_in))
        self.bias = nn.Parameter(torch.zeros(heads_out))

    def forward(self, x: Tensor) -> Tensor:
        return mix_heads(x, self.weight, self.bias)


class Mlp(nn.Module):
    """Linear - act - [depthwise conv on the token map] - Linear: (B, N, C) -> (B, N, C)."""

    def __init__(self, fc1: nn.Module, act: nn.Module, dwconv: nn.Module | None, fc2: nn.Module):
        super().__init__()
        self.fc1, self.act, self.dwconv, self.fc2 = fc1, act, dwconv, fc2

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        x = self.act(self.fc1(x))  # (B, N, hidden)
        if self.dwconv is not None:
            batch, tokens, hidden = x.shape
            x = x.transpose(1, 2).reshape(batch, hidden, height, width)
            x = self.dwconv(x).reshape(batch, hidden, tokens).transpose(1, 2)
        return self.fc2(x)


class MBPoolHead(nn.Module):
    """1x1 expand conv-BN-act - global pool - 1x1 conv (no BN, no bias) - act - dropout - linear.

    (B, C, H, W) -> (B, num_classes); (B, width) pooled features when ``classifier`` is ``nn.Identity``. Without
    ``pool`` (timm's ``global_pool=''``) the head acts at every position: (B, num_classes or width, H, W).
    """

    def __init__(
        self,
        expand: nn.Module,
        mix: nn.Module,
        act: nn.Module,
        dropout: float,
        classifier: nn.Module,
        pool: bool = True,
    ):
        super().__init__()
        self.expand, self.mix, self.act = expand, mix, act
        self.dropout = nn.Dropout(dropout)
        self.classifier = classifier
        self.pool = pool

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> pooled features (B, width), or (B, width, H, W) without ``pool``."""
        x = self.expand(x)
        if self.pool:
            x = x.mean((2, 3), keepdim=True)
        x = self.act(self.mix(x))
        return x.flatten(1) if self.pool else x

    def forward(self, x: Tensor) -> Tensor:
        x = self.dropout(self.forward_features(x))
        if self.pool:
            return self.classifier(x)
        return self.classifier(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # the linear over channels, per position


def resize_input(x: Tensor, resolution: int, mode: str) -> Tensor:
    """Resize (B, C, H, W) images to (B, C, resolution, resolution) when they differ; else return them."""
    if x.shape[-2] == resolution and x.shape[-1] == resolution:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=(resolution, resolution), mode=mode)
    return F.interpolate(x, size=(resolution, resolution), mode=mode, align_corners=False)
