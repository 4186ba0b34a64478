"""The blocks of a NASViT network: MBConv, Fused-MBConv and the NASViT transformer block.

Each block is a container of layers. The supernet fills it with elastic ops, an exported model with
standard layers; the forward code is the same, so the two compute the same function by construction.
Each residual branch passes through ``drop_path`` (stochastic depth; ``nn.Identity`` unless a static model is
built with ``drop_path_rate > 0``, and then an identity in eval mode).
"""

from __future__ import annotations

from torch import Tensor, nn


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] - depthwise or grouped kxk (the ``depthwise`` layer, whatever its group
    size) - [SE] - 1x1 project, plus the shortcut.

    (B, C_in, H, W) -> (B, C_out, H / stride, W / stride). ``drop_path`` (default identity) acts on the branch;
    the builder sets it only when the shortcut is the identity.
    """

    def __init__(
        self,
        expand: nn.Module,
        depthwise: nn.Module,
        se: nn.Module,
        project: nn.Module,
        shortcut: nn.Module,
        drop_path: nn.Module | None = None,
    ):
        super().__init__()
        self.expand, self.depthwise, self.se, self.project, self.shortcut = expand, depthwise, se, project, shortcut
        self.drop_path = nn.Identity() if drop_path is None else drop_path

    def forward(self, x: Tensor) -> Tensor:
        return self.drop_path(self.project(self.se(self.depthwise(self.expand(x))))) + self.shortcut(x)


class FusedMBConv(nn.Module):
    """Fused inverted residual (EfficientNetV2): kxk conv to the expanded width - [SE] - 1x1 project, plus the
    shortcut.

    (B, C_in, H, W) -> (B, C_out, H / stride, W / stride). ``drop_path`` (default identity) acts on the branch;
    the builder sets it only when the shortcut is the identity.
    """

    def __init__(
        self,
        fused: nn.Module,
        se: nn.Module,
        project: nn.Module,
        shortcut: nn.Module,
        drop_path: nn.Module | None = None,
    ):
        super().__init__()
        self.fused, self.se, self.project, self.shortcut = fused, se, project, shortcut
        self.drop_path = nn.Identity() if drop_path is None else drop_path

    def forward(self, x: Tensor) -> Tensor:
        return self.drop_path(self.project(self.se(self.fused(x)))) + self.shortcut(x)


def window_partition(x: Tensor, height: int, width: int, grid_rows: int, grid_cols: int) -> Tensor:
    """(B, H*W, C) tokens -> (B * grid_rows * grid_cols, window tokens, C), windows in row-major order."""
    batch, _, channels = x.shape
    rows, cols = height // grid_rows, width // grid_cols
    x = x.view(batch, grid_rows, rows, grid_cols, cols, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(batch * grid_rows * grid_cols, rows * cols, channels)


def window_merge(x: Tensor, height: int, width: int, grid_rows: int, grid_cols: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * windows, window tokens, C) -> (B, H*W, C)."""
    channels = x.shape[-1]
    rows, cols = height // grid_rows, width // grid_cols
    x = x.view(-1, grid_rows, grid_cols, rows, cols, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height * width, channels)


class TalkingHeadAttention(nn.Module):
    """Multi-head attention with small heads, an expanded V with a depthwise conv, relative-position bias and
    talking-head mixes before and after the softmax, inside ``grid_rows x grid_cols`` windows.

    (B, N, C) -> (B, N, C) with N = height * width; heads = C / head_dim, each with head_dim query/key dims
    and V-width / heads value dims.
    """

    def __init__(
        self,
        q: nn.Module,
        k: nn.Module,
        v: nn.Module,
        v_conv: nn.Module,
        position_bias: nn.Module,
        talk_pre: nn.Module,
        talk_post: nn.Module,
        act: nn.Module,
        proj: nn.Module,
        head_dim: int,
        grid: tuple[int, int],
    ):
        super().__init__()
        self.q, self.k, self.v, self.v_conv = q, k, v, v_conv
        self.position_bias, self.talk_pre, self.talk_post = position_bias, talk_pre, talk_post
        self.act, self.proj = act, proj
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.grid_rows, self.grid_cols = grid

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        windowed = self.grid_rows * self.grid_cols > 1
        if windowed:
            x = window_partition(x, height, width, self.grid_rows, self.grid_cols)
        batch, tokens, channels = x.shape  # batch counts windows
        heads = channels // self.head_dim
        rows, cols = height // self.grid_rows, width // self.grid_cols
        q = self.q(x).view(batch, tokens, heads, self.head_dim).transpose(1, 2)  # (B, heads, n, head_dim)
        k = self.k(x).view(batch, tokens, heads, self.head_dim).transpose(1, 2)
        v = self.v(x)  # (B, n, Cv)
        value_channels = v.shape[-1]
        v = self.v_conv(v.transpose(1, 2).reshape(batch, value_channels, rows, cols))  # (B, Cv, rows, cols)
        v = v.reshape(batch, heads, value_channels // heads, tokens).transpose(2, 3)  # (B, heads, n, Cv/heads)
        logits = (q * self.scale) @ k.transpose(-2, -1) + self.position_bias()  # (B, heads, n, n)
        attention = self.talk_post(self.talk_pre(logits).softmax(-1))  # mixes across heads, (B, heads, n, n)
        out = (attention @ v).transpose(1, 2).reshape(batch, tokens, value_channels)  # (B, n, Cv)
        out = self.proj(self.act(out))  # (B, n, C)
        if windowed:
            out = window_merge(out, height, width, self.grid_rows, self.grid_cols)
        return out


class TransformerBlock(nn.Module):
    """NASViT block on a feature map: attention then two MLPs, each residual branch scaled.

    x = x + s_attn * Attn(Norm1(x)); x = x + s_mlp * MLP1(Norm2(x)); x = x + s_mlp * MLP2(Norm3(x)).
    (B, C, H, W) -> (B, C, H, W); tokens are the H*W positions in row-major order. ``drop_path`` (default
    identity) acts on each of the three scaled branches.
    """

    def __init__(
        self,
        norm1: nn.Module,
        attn: TalkingHeadAttention,
        norm2: nn.Module,
        mlp1: nn.Module,
        norm3: nn.Module,
        mlp2: nn.Module,
        scale_attn: nn.Module,
        scale_mlp: nn.Module,
        drop_path: nn.Module | None = None,
    ):
        super().__init__()
        self.norm1, self.attn = norm1, attn
        self.norm2, self.mlp1, self.norm3, self.mlp2 = norm2, mlp1, norm3, mlp2
        self.scale_attn, self.scale_mlp = scale_attn, scale_mlp
        self.drop_path = nn.Identity() if drop_path is None else drop_path

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
        tokens = tokens + self.drop_path(self.scale_attn(self.attn(self.norm1(tokens), height, width)))
        tokens = tokens + self.drop_path(self.scale_mlp(self.mlp1(self.norm2(tokens), height, width)))
        tokens = tokens + self.drop_path(self.scale_mlp(self.mlp2(self.norm3(tokens), height, width)))
        return tokens.reshape(batch, height, width, channels).permute(0, 3, 1, 2)  # a view, channels-last strides
