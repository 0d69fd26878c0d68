"""Build EfficientNet-Lite0 as an ONNX graph (opset 13) from a legacy .pth state dict.

Architecture (EfficientNet-B0 block table, Lite variant): stem 3x3/2 conv -> 32,
16 MBConv blocks without squeeze-excitation, ReLU6 (= Clip(0, 6) with min/max given
as constant inputs), 1x1 head conv -> 1280, global average pool, flatten, FC 1000.
BatchNorm eps 1e-3. Convolutions use TensorFlow "SAME" padding, which for stride 2 on
even sizes is asymmetric; the input is fixed at 224x224 so pads are explicit.
"""
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (expand ratio, kernel, stride, repeats, output channels)
BLOCKS = [
    (1, 3, 1, 1, 16),
    (6, 3, 2, 2, 24),
    (6, 5, 2, 2, 40),
    (6, 3, 2, 3, 80),
    (6, 5, 1, 3, 112),
    (6, 5, 2, 4, 192),
    (6, 3, 1, 1, 320),
]
STEM, HEAD, CLASSES, SIZE, BN_EPS = 32, 1280, 1000, 224, 1e-3
OPSET = 13


def same_pads(size, kernel, stride):
    """TF SAME padding for one spatial dim: (begin, end, output size)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class _Builder:
    def __init__(self, sd, fold_bn):
        self.sd, self.fold = sd, fold_bn
        self.nodes, self.inits = [], []
        self.inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"))
        self.inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"))

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32), name))
        return name

    def conv_bn(self, x, prefix, conv_key, bn_key, size, stride, group=1):
        w = self.sd[conv_key + ".weight"].astype(np.float32)
        k = w.shape[2]
        pb, pe, out = same_pads(size, k, stride)
        gamma, beta = self.sd[bn_key + ".weight"], self.sd[bn_key + ".bias"]
        mean, var = self.sd[bn_key + ".running_mean"], self.sd[bn_key + ".running_var"]
        attrs = dict(kernel_shape=[k, k], strides=[stride, stride],
                     pads=[pb, pb, pe, pe], group=group, dilations=[1, 1])
        conv_out = prefix + ("_conv" if self.fold else "_conv_raw")
        if self.fold:
            scale = gamma / np.sqrt(var + BN_EPS)
            wf = w * scale[:, None, None, None]
            bf = beta - mean * scale
            self.nodes.append(helper.make_node(
                "Conv", [x, self.init(prefix + ".weight", wf), self.init(prefix + ".bias", bf)],
                [conv_out], name=prefix + "/Conv", **attrs))
            return conv_out, out
        self.nodes.append(helper.make_node(
            "Conv", [x, self.init(prefix + ".weight", w)], [conv_out],
            name=prefix + "/Conv", **attrs))
        bn_out = prefix + "_bn"
        self.nodes.append(helper.make_node(
            "BatchNormalization",
            [conv_out, self.init(prefix + ".bn.scale", gamma), self.init(prefix + ".bn.bias", beta),
             self.init(prefix + ".bn.mean", mean), self.init(prefix + ".bn.var", var)],
            [bn_out], name=prefix + "/BatchNormalization", epsilon=BN_EPS, momentum=0.99))
        return bn_out, out

    def relu6(self, x, prefix):
        y = prefix + "_relu6"
        self.nodes.append(helper.make_node("Clip", [x, "relu6_min", "relu6_max"], [y],
                                           name=prefix + "/Clip"))
        return y

    def build(self):
        x, size = "x", SIZE
        x, size = self.conv_bn(x, "stem", "_conv_stem", "_bn0", size, 2)
        x = self.relu6(x, "stem")
        cin, idx = STEM, 0
        for expand, k, stride, repeats, cout in BLOCKS:
            for r in range(repeats):
                s = stride if r == 0 else 1
                p, key = f"block{idx}", f"_blocks.{idx}"
                inp, mid = x, cin * expand
                if expand != 1:
                    x, _ = self.conv_bn(x, p + ".expand", key + "._expand_conv", key + "._bn0", size, 1)
                    x = self.relu6(x, p + ".expand")
                assert self.sd[key + "._depthwise_conv.weight"].shape == (mid, 1, k, k)
                x, size = self.conv_bn(x, p + ".dw", key + "._depthwise_conv", key + "._bn1",
                                       size, s, group=mid)
                x = self.relu6(x, p + ".dw")
                x, _ = self.conv_bn(x, p + ".project", key + "._project_conv", key + "._bn2", size, 1)
                if s == 1 and cin == cout:
                    y = p + "_add"
                    self.nodes.append(helper.make_node("Add", [x, inp], [y], name=p + "/Add"))
                    x = y
                cin, idx = cout, idx + 1
        assert f"_blocks.{idx}._project_conv.weight" not in self.sd, "block table mismatch"
        x, size = self.conv_bn(x, "head", "_conv_head", "_bn1", size, 1)
        x = self.relu6(x, "head")
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool/GlobalAveragePool"))
        self.nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten/Flatten", axis=1))
        self.nodes.append(helper.make_node(
            "Gemm", ["features", self.init("fc.weight", self.sd["_fc.weight"]),
                     self.init("fc.bias", self.sd["_fc.bias"])],
            ["logits"], name="fc/Gemm", transB=1))
        name = "efficientnet-lite0" + ("" if self.fold else "-bn")
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="whittle-fetch-models")
        model.ir_version = 8
        model.doc_string = ("EfficientNet-Lite0 ImageNet-1k. Input RGB 224x224, (x-127)/128, NCHW. "
                            + ("BatchNorm folded into conv." if self.fold else "BatchNormalization kept, eps 1e-3."))
        return model


def build(state_dict, fold_bn):
    model = _Builder(state_dict, fold_bn).build()
    onnx.checker.check_model(model, full_check=True)
    return model
