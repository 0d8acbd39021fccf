"""The untrained baselines of the face results tables: what a fill from the surroundings, a random prior face and
the prior face nearest to the input give without any training.

Each function takes the held-out inputs' true faces, renders the observation from them (masking / average
pooling) and from then on reads the observation only, never the hidden truth. Bank faces are the biased
prior collection (the faces the ``--bias`` selected), so the bank baselines show how much of a bias a plain
choice among those faces carries. NumPy arrays in and out; deterministic given ``seed``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from aign_tf import renderers
from aign_tf.blending import poisson_blend, pull_push_fill

# Table order; one line each for table rows and docs.
INPAINT_BASELINES = {
    "pull_push": "the hole filled smoothly from the visible pixels around it (pull-push, Gortler et al. 1996)",
    "random_paste": "a random bank face's hole pasted as is",
    "random_seamless": "the same random bank face's hole, Poisson-blended into the input (Perez et al. 2003)",
    "nearest_paste": "the hole of the bank face nearest to the input on its visible pixels, pasted as is",
    "nearest_seamless": "the same nearest bank face's hole, Poisson-blended into the input",
}
SUPERRES_BASELINES = {
    "upsampled": "the low-resolution input upsampled bicubically, made consistent with it",
    "random_detail": "a random bank face's detail over the block-upsampled input, made consistent with it",
    "nearest_detail": "the detail of the bank face nearest to the input at low resolution, over the "
                      "block-upsampled input, made consistent with it",
}
CHUNK = 250  # inputs per TensorFlow call: bounds the memory, not the result
SEARCH_CHUNK = 1000  # observations per matmul of the nearest search (larger matmuls run faster)


def _images(array, name: str, channels: int, like: np.ndarray | None = None) -> np.ndarray:
    """``array`` as float32 [N, S, S, channels] (S from ``like`` when given)."""
    array = np.asarray(array, np.float32)
    size = array.shape[1] if like is None else like.shape[1]
    if array.ndim != 4 or array.shape[1:] != (size, size, channels):
        raise ValueError(f"{name} must have shape [N, {size}, {size}, {channels}]"
                         f"{' like images' if like is not None else ''}; got {array.shape}")
    return array


def random_choice(seed: int, count: int, bank_size: int) -> np.ndarray:
    """[count] int64 bank indices drawn uniformly with replacement, the same for the same seed."""
    if bank_size < 1:
        raise ValueError(f"the bank must hold at least one face; got {bank_size}")
    return np.random.default_rng(seed).integers(bank_size, size=count)


def nearest_faces(observations, candidates, weights=None, chunk: int = SEARCH_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """The candidate nearest to each observation in mean squared difference over the observed values.

    With weights w (1 = observed), observation o and candidate c the error is
    ``(sum w o^2 - 2 sum (w o) c + sum w c^2) / (C sum w)``, its last two terms matmuls over chunks of
    ``chunk`` observations (the last one computed once when every observation has the same weights): no
    [N, K, values] array is formed. Values with weight 0 do not enter (when finite).

    Args:
      observations: `[N, h, w, C]`.
      candidates: `[K, h, w, C]`, in the observations' space (rendered the same way).
      weights: None (every value counts) or `[N, h, w, 1]`, one weight per pixel (the mask, 1 = visible).
      chunk: observations per matmul.

    Returns:
      ``(indices, errors)``: `[N]` int64 the nearest candidate's index (the lowest index among ties) and `[N]`
      float64 its mean squared difference (NaN where no value is observed).
    """
    obs = np.asarray(observations, np.float32)
    cand = np.asarray(candidates, np.float32)
    if obs.ndim != 4 or cand.ndim != 4 or obs.shape[1:] != cand.shape[1:] or len(cand) < 1:
        raise ValueError(f"observations [N, h, w, C] and candidates [K >= 1, h, w, C] must match; got "
                         f"{obs.shape} and {cand.shape}")
    n, channels = len(obs), obs.shape[-1]
    flat_cand = cand.reshape(len(cand), -1).T  # [values, K]
    shared = weights is None  # the bank term is one row [1, K] for all observations
    if weights is None:
        cand_sq = np.square(flat_cand).sum(0)[None, :]  # [1, K]
    else:
        weights = np.asarray(weights, np.float32)
        if weights.shape != obs.shape[:3] + (1,):
            raise ValueError(f"weights must have shape {list(obs.shape[:3]) + [1]}; got {weights.shape}")
        cand_sq = np.square(cand).sum(-1).reshape(len(cand), -1).T  # [pixels, K]
        shared = bool((weights == weights[:1]).all())  # one mask for all (a fixed hole)
        if shared:
            cand_sq = weights[:1].reshape(1, -1) @ cand_sq  # [1, K]
    indices, errors = np.zeros(n, np.int64), np.zeros(n)
    for i in range(0, n, chunk):
        o = obs[i:i + chunk]
        if weights is None:
            w_o, bank_term = o, cand_sq
            count = np.full(len(o), float(o[0].size))
        else:
            w = weights[i:i + chunk]
            w_o = w * o
            bank_term = cand_sq if shared else w.reshape(len(o), -1) @ cand_sq  # [1 or n, K]
            count = channels * w.reshape(len(o), -1).sum(1, dtype=np.float64)
        error = bank_term - 2.0 * (w_o.reshape(len(o), -1) @ flat_cand)  # [n, K], without the o^2 term
        best = np.argmin(error, axis=1)
        own = (w_o * o).reshape(len(o), -1).sum(1, dtype=np.float64)
        indices[i:i + chunk] = best
        with np.errstate(invalid="ignore", divide="ignore"):
            errors[i:i + chunk] = np.where(count > 0, np.maximum(error[np.arange(len(o)), best] + own, 0.0) / count,
                                           np.nan)
    return indices, errors


def _blend(observation: np.ndarray, donors: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = [poisson_blend(observation[i:i + CHUNK], donors[i:i + CHUNK], mask[i:i + CHUNK]).numpy()
           for i in range(0, len(observation), CHUNK)]
    return np.clip(np.concatenate(out), 0.0, 1.0)


def inpaint_baselines(images, mask, bank, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The untrained inpainting baselines (``INPAINT_BASELINES``) on the inputs' observations.

    Every output is the input where the mask is visible, exactly; the hole is
      * ``pull_push``: ``blending.pull_push_fill`` of the masked input,
      * ``random_paste``: the hole of a bank face drawn at random (``random_choice(seed, N, K)``),
      * ``random_seamless``: that face's hole Poisson-blended into the input (``blending.poisson_blend``; the
        hole must be one rectangle per example), clipped to [0, 1],
      * ``nearest_paste``, ``nearest_seamless``: the same with the bank face of least mean squared difference
        to the input over the input's visible pixels (``nearest_faces``); the hidden pixels are never read.

    Args:
      images: `[N, S, S, 3]` in [0, 1], the inputs' true faces (only their visible pixels are read).
      mask: `[N, S, S, 1]`, 1 = visible, 0 = hole (a pixel is hidden where mask < 0.5).
      bank: `[K, S, S, 3]` in [0, 1], the prior faces.
      seed: the random choice's seed.

    Returns:
      ``(outputs, chosen)``: outputs maps each name of ``INPAINT_BASELINES``, in that order, to `[N, S, S, 3]`
      float32; chosen maps each baseline that uses a bank face to its `[N]` int64 bank indices.
    """
    images = _images(images, "images", 3)
    mask = _images(mask, "mask", 1, like=images)
    if len(mask) != len(images):
        raise ValueError(f"mask holds {len(mask)} examples, images {len(images)}")
    bank = _images(bank, "bank", 3, like=images)
    hidden = mask < 0.5
    mask = (~hidden).astype(np.float32)
    observation = np.where(hidden, 0.0, images).astype(np.float32)  # what every baseline reads
    chosen = {"random": random_choice(seed, len(images), len(bank)),
              "nearest": nearest_faces(observation, bank, weights=mask)[0]}
    outputs = {"pull_push": np.concatenate([pull_push_fill(tf.constant(observation[i:i + CHUNK]),
                                                           tf.constant(mask[i:i + CHUNK])).numpy()
                                            for i in range(0, len(images), CHUNK)])}
    for kind, index in chosen.items():
        donors = bank[index]
        outputs[f"{kind}_paste"] = np.where(hidden, donors, observation)
        outputs[f"{kind}_seamless"] = np.where(hidden, _blend(observation, donors, mask), observation)
    return ({name: outputs[name] for name in INPAINT_BASELINES},
            {name: chosen[name.split("_")[0]] for name in INPAINT_BASELINES if name != "pull_push"})


def _downsample(images: np.ndarray, factor: int) -> np.ndarray:
    return np.concatenate([renderers.downsample_render(tf.constant(images[i:i + CHUNK]), factor).numpy()
                           for i in range(0, len(images), CHUNK)])


def superres_baselines(images, factor: int, bank,
                       seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The untrained super-resolution baselines (``SUPERRES_BASELINES``) on the inputs' observations.

    The observation is ``renderers.downsample_render(images, factor)``; every output renders back to it (up to
    float32 rounding, ``renderers.downsample_consistent``):
      * ``upsampled``: the observation resized bicubically (``tf.image.resize``, half-pixel centres) to S x S and
        made consistent with it,
      * ``random_detail``: a random bank face's detail (the face minus its own render, block-upsampled) added to
        the block-upsampled observation and made consistent: what ``SuperResTask.compose`` outputs when the
        exemplar generator picks that face (its base is the block-upsampled observation),
      * ``nearest_detail``: the same with the bank face whose render is nearest to the observation (``nearest_faces``).

    Args:
      images: `[N, S, S, 3]` in [0, 1], the inputs' true faces (only their render is read).
      factor: the downsampling factor, dividing S.
      bank: `[K, S, S, 3]` in [0, 1], the prior faces.
      seed: the random choice's seed.

    Returns:
      ``(outputs, chosen)`` as ``inpaint_baselines``: `[N, S, S, 3]` float32 per name of ``SUPERRES_BASELINES``,
      in that order, and `[N]` bank indices per detail baseline.
    """
    images = _images(images, "images", 3)
    bank = _images(bank, "bank", 3, like=images)
    size = images.shape[1]
    observation = _downsample(images, factor)  # what every baseline reads
    bank_render = _downsample(bank, factor)
    chosen = {"random_detail": random_choice(seed, len(images), len(bank)),
              "nearest_detail": nearest_faces(observation, bank_render)[0]}
    outputs = {name: [] for name in SUPERRES_BASELINES}
    for i in range(0, len(images), CHUNK):
        obs = tf.constant(observation[i:i + CHUNK])
        smooth = tf.image.resize(obs, [size, size], method="bicubic")
        outputs["upsampled"].append(renderers.downsample_consistent(smooth, obs, factor).numpy())
        base = renderers.block_upsample(obs, factor)
        for name, index in chosen.items():
            face = tf.constant(bank[index[i:i + CHUNK]])
            detail = face - renderers.block_upsample(tf.constant(bank_render[index[i:i + CHUNK]]), factor)
            outputs[name].append(renderers.downsample_consistent(base + detail, obs, factor).numpy())
    return {name: np.concatenate(parts) for name, parts in outputs.items()}, chosen
