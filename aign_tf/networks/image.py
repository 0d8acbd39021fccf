"""Image networks for the face tasks: a residual U-Net generator, a PatchGAN discriminator and the
attribute probe classifier.

All builders take a Keras ``dtype_policy`` (``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"``) that
is passed to every layer instead of being set globally; the last layer of every network computes in
float32 so outputs and logits are always float32. Images enter in [0, 1] and are mapped to [-1, 1]
inside the networks.
"""

from __future__ import annotations

import keras
from keras import layers, ops


class NoiseInjection(layers.Layer):
    """Per-pixel noise input of StyleGAN (Karras et al. 2019, section 3.2): ``features + strength * noise``,
    with one learned strength per channel, initialised to 0, and one noise map shared by all channels.

    Inputs: features [B, H, W, C]; noise [B, H * stride, W * stride, 1] (the generator's full-resolution noise,
    read at every ``stride``-th pixel, so each resolution still sees independent unit-variance values).
    It gives the generator a source of stochastic detail (stubble, hair strands, skin texture) that its
    smooth, position-free condition inside a hole cannot provide."""

    def __init__(self, stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.stride = stride

    def build(self, input_shape):
        self.strength = self.add_weight(shape=(input_shape[0][-1],), initializer="zeros", name="strength")

    def call(self, inputs):
        x, noise = inputs
        noise = noise[:, ::self.stride, ::self.stride, :]
        return x + ops.cast(noise, x.dtype) * ops.cast(self.strength, x.dtype)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


def _conv(filters, kernel, strides, policy, name, activation=None):
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", activation=activation,
                         dtype=policy, name=name)


def unet_generator(image_size: int, in_channels: int, base_filters: int = 32, depth: int = 3,
                   noise: bool = False, dtype_policy: str = "float32", name: str = "generator") -> keras.Model:
    """Residual U-Net: ``output = base + delta(condition)``.

    Inputs:
      condition: [B, S, S, in_channels] in [0, 1] — what the generator sees (e.g. masked image + mask, or
        the nearest-upsampled low-resolution image).
      base: [B, S, S, 3] in [0, 1] — the image the prediction starts from (the masked image with its hole filled, the
        upsampled input).
      noise (only with ``noise=True``): [B, S, S, 1], unit Gaussian where the generator may invent detail, 0
        elsewhere; added through ``NoiseInjection`` after the bottleneck and every decoder convolution.
    Output: [B, S, S, 3] float32, the predicted full-resolution face (not clipped).

    Encoder: ``depth`` stride-2 stages (filters base * 2**i, capped at 4x base); decoder: nearest upsampling,
    skip concatenation, two 3x3 convs. The delta is a linear 3x3 conv initialised near zero, so training
    starts from ``base`` and the reconstruction term is easy to satisfy early.
    """
    if image_size % (2**depth):
        raise ValueError(f"image_size={image_size} must be divisible by 2**depth={2**depth}")
    cond = keras.Input((image_size, image_size, in_channels), name="condition")
    base = keras.Input((image_size, image_size, 3), name="base")
    inputs = {"condition": cond, "base": base}
    if noise:
        inputs["noise"] = keras.Input((image_size, image_size, 1), name="noise")

    def conv_relu(x, filters, name, resolution_stride):
        """3x3 stride-1 conv + ReLU, with the noise added before the ReLU when the generator has noise inputs."""
        if not noise:
            return _conv(filters, 3, 1, dtype_policy, name, "relu")(x)
        x = _conv(filters, 3, 1, dtype_policy, name)(x)
        x = NoiseInjection(resolution_stride, dtype=dtype_policy, name=f"{name}_noise")([x, inputs["noise"]])
        return layers.ReLU(dtype=dtype_policy, name=f"{name}_relu")(x)

    x = layers.Rescaling(2.0, offset=-1.0, dtype=dtype_policy, name="to_signed")(cond)
    x = _conv(base_filters, 3, 1, dtype_policy, "stem", "relu")(x)
    skips = []
    for i in range(depth):
        skips.append(x)
        f = base_filters * min(2 ** (i + 1), 4)
        x = _conv(f, 3, 2, dtype_policy, f"down{i}_a", "relu")(x)
        if i == depth - 1:  # the bottleneck
            x = conv_relu(x, f, f"down{i}_b", 2**depth)
        else:
            x = _conv(f, 3, 1, dtype_policy, f"down{i}_b", "relu")(x)
    for i in reversed(range(depth)):
        f = base_filters * min(2**i, 4)
        x = layers.UpSampling2D(2, dtype=dtype_policy, name=f"up{i}")(x)
        x = layers.Concatenate(dtype=dtype_policy, name=f"skip{i}")([x, skips[i]])
        x = conv_relu(x, f, f"up{i}_a", 2**i)
        x = conv_relu(x, f, f"up{i}_b", 2**i)
    delta = layers.Conv2D(3, 3, padding="same", dtype="float32", name="delta",
                          kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3))(x)
    out = layers.Add(dtype="float32", name="output")([layers.Activation("linear", dtype="float32")(base), delta])
    return keras.Model(inputs, out, name=name)


class ExemplarChoice(layers.Layer):
    """Picks one image of a fixed bank per example from choice logits, straight-through (Jang et al. 2017,
    Gumbel-softmax with the noise already in the logits): the forward value is always exactly the bank image of
    the highest logit, the gradient is that of the softmax mixture ``softmax(logits / temperature) @ bank``.

    Input: logits [B, K] float32. Output: [B, S, S, 3] float32, the chosen bank image. The bank [K, S, S, 3] in
    [0, 1] is a non-trainable weight, so checkpoints and SavedModels carry it.

    With ``match_shapes`` the layer also keeps, as non-trainable weights beside the bank, values its user derives
    from the bank once per bank value rather than once per call (the task's rendered bank for the match term:
    ``match_rendered`` and ``match_rendered_sq``, of those two shapes). The layer never computes them: whoever
    sets the bank sets them too (``set_bank``). SavedModels and ``get_weights`` / ``set_weights`` carry them with
    the bank; training checkpoints do not (``_trackable_children``): they are derived, not state, so whoever
    restores a checkpoint recomputes them from the restored bank (``Task.generator_restored``, which the trainer
    calls), and checkpoints written before they existed, or without them, restore unchanged."""

    DERIVED_WEIGHTS = ("match_rendered", "match_rendered_sq")

    def __init__(self, bank_shape, temperature: float = 1.0, match_shapes=None, **kwargs):
        super().__init__(**kwargs)
        self.bank_shape = tuple(int(d) for d in bank_shape)
        self.temperature = temperature
        self.match_shapes = None if match_shapes is None else tuple(tuple(int(d) for d in s) for s in match_shapes)

    def build(self, input_shape):
        self.bank = self.add_weight(shape=self.bank_shape, initializer="zeros", trainable=False, name="bank")
        if self.match_shapes is not None:
            self.match_rendered = self.add_weight(shape=self.match_shapes[0], initializer="zeros", trainable=False,
                                                  name="match_rendered")
            self.match_rendered_sq = self.add_weight(shape=self.match_shapes[1], initializer="zeros",
                                                     trainable=False, name="match_rendered_sq")

    def set_bank(self, bank, match_terms=None):
        """Assigns the bank [K, S, S, 3] and, with ``match_shapes``, the values derived from it (a pair of arrays of
        those shapes), together."""
        if (match_terms is None) != (self.match_shapes is None):
            raise ValueError(f"exemplar bank: match terms {'given' if match_terms is not None else 'missing'} for a "
                             f"layer with match_shapes={self.match_shapes}")
        self.bank.assign(ops.convert_to_tensor(bank, "float32"))
        if match_terms is not None:
            self.match_rendered.assign(ops.convert_to_tensor(match_terms[0], "float32"))
            self.match_rendered_sq.assign(ops.convert_to_tensor(match_terms[1], "float32"))

    def call(self, logits):
        soft = ops.softmax(ops.cast(logits, "float32") / self.temperature, axis=-1)
        hard = ops.one_hot(ops.argmax(soft, axis=-1), self.bank_shape[0], dtype="float32")
        weights = hard + soft - ops.stop_gradient(soft)
        return ops.einsum("bk,khwc->bhwc", weights, ops.cast(self.bank, "float32"))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.bank_shape[1:])

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        """A checkpoint leaves out the weights derived from the bank (see the class docstring); a SavedModel keeps
        them, so the served graph reads them as it does in training."""
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "checkpoint":
            for name in self.DERIVED_WEIGHTS:
                children.pop(name, None)
        return children

    def get_config(self):
        return {**super().get_config(), "bank_shape": self.bank_shape, "temperature": self.temperature,
                "match_shapes": self.match_shapes}


def exemplar_generator(bank, image_size: int, in_channels: int, base_filters: int = 16,
                       dtype_policy: str = "float32", name: str = "generator", match_terms=None) -> keras.Model:
    """A choice among exemplars as the whole generator: a small strided-conv encoder of the condition computes
    one logit per bank image, the task's ``logit_offset`` is added (Gumbel noise while training, a match term)
    and ``ExemplarChoice`` picks one (example-based synthesis: Freeman et al. 2002 for super-resolution, Hays &
    Efros 2007 for completion). The task decides how the exemplar enters the output (the hole's content, or
    its high-frequency detail over ``base``).

    Inputs: condition [B, S, S, in_channels], base [B, S, S, 3], logit_offset [B, K]. bank: [K, S, S, 3] float
    array in [0, 1] (images of the prior collection). match_terms: None, or two arrays the task derives from the
    bank, kept beside it in the choice layer (``ExemplarChoice.match_shapes``).
    Output: {"face": ``base``, [B, S, S, 3]; "exemplar": [B, S, S, 3]; "logits": the logits the choice took,
    offset included, [B, K] float32}."""
    inputs = {"condition": keras.Input((image_size, image_size, in_channels), name="condition"),
              "base": keras.Input((image_size, image_size, 3), name="base"),
              "logit_offset": keras.Input((len(bank),), name="logit_offset")}
    x = layers.Rescaling(2.0, offset=-1.0, dtype=dtype_policy, name="select_signed")(inputs["condition"])
    for i, mult in enumerate((1, 2, 4, 4)):
        x = _conv(base_filters * mult, 3, 2, dtype_policy, f"select{i}", "relu")(x)
    x = layers.GlobalAveragePooling2D(dtype=dtype_policy, name="select_pool")(x)
    logits = layers.Dense(len(bank), dtype="float32", name="select_logits",
                          kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3))(x)
    logits = layers.Add(dtype="float32", name="choice_logits")([logits, inputs["logit_offset"]])
    match_shapes = None if match_terms is None else [ops.shape(t) for t in match_terms]
    choice = ExemplarChoice(bank.shape, match_shapes=match_shapes, dtype="float32", name="exemplar_choice")
    exemplar = choice(logits)
    choice.set_bank(bank, match_terms)
    return keras.Model(inputs, {"face": inputs["base"], "exemplar": exemplar, "logits": logits}, name=name)


def patch_discriminator(image_size: int, channels: int = 3, base_filters: int = 32, depth: int = 3,
                        spectral_norm: bool = False, dtype_policy: str = "float32",
                        name: str = "discriminator") -> keras.Model:
    """PatchGAN discriminator (Isola et al. 2017): [B, S, S, C] in [0, 1] -> logits [B, S/2**depth,
    S/2**depth, 1] float32, one per overlapping patch. Optional spectral normalisation (Miyato et al. 2018)
    via ``keras.layers.SpectralNormalization``."""
    wrap = layers.SpectralNormalization if spectral_norm else (lambda layer, **_: layer)
    inp = keras.Input((image_size, image_size, channels), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, dtype=dtype_policy, name="to_signed")(inp)
    for i in range(depth):
        f = base_filters * min(2**i, 8)
        x = wrap(_conv(f, 4, 2, dtype_policy, f"conv{i}"), dtype=dtype_policy)(x)
        x = layers.LeakyReLU(0.2, dtype=dtype_policy)(x)
    x = wrap(_conv(base_filters * min(2**depth, 8), 3, 1, dtype_policy, "conv_last"), dtype=dtype_policy)(x)
    x = layers.LeakyReLU(0.2, dtype=dtype_policy)(x)
    logits = layers.Conv2D(1, 3, padding="same", dtype="float32", name="logits")(x)
    return keras.Model(inp, logits, name=name)


def attribute_probe(image_size: int, num_attributes: int, base_filters: int = 16,
                    name: str = "attribute_probe") -> keras.Model:
    """Multi-label attribute classifier used as a measuring instrument: [B, S, S, 3] in [0, 1] -> logits
    [B, A] float32 (sigmoid gives per-attribute probabilities). Always float32."""
    inp = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0)(inp)
    # Strided convolutions (the first 5x5, so pixel-scale cues such as stubble still reach it): 4x cheaper
    # on a CPU than stride-1 convolutions followed by pooling.
    for i, mult in enumerate((1, 2, 4, 4)):
        x = layers.Conv2D(base_filters * mult, 5 if i == 0 else 3, strides=2, padding="same", use_bias=False,
                          name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    logits = layers.Dense(num_attributes, name="logits")(x)
    return keras.Model(inp, logits, name=name)
