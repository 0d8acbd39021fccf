"""The region probe beside the whole-image probe, and the realism figures' reference points.

    python scripts/region_probe_check.py [--cache_dir=datasets/cache]

On the held-out faces of the default inpainting settings (built-in faces unless the flags say otherwise), with the
whole-image probe and the region probe of the mouth/nose box (each trained once and cached), prints
  * both probes' held-out accuracy for the reported attributes and Mustache;
  * the fraction each calls Male among women, men and all when the box holds the true face, another held-out face's
    box, the mean colour of the visible pixels, uniform random colours, or the pull-push fill;
  * FD and KID between the first half of the held-out faces with those fills and the second half's true faces
    (halves that share no person, ``metrics.group_halves``), in each probe's feature space.
"""

import argparse
import types

import numpy as np
import tensorflow as tf

from aign_tf import building, main, metrics, renderers
from aign_tf.data.synthetic_faces import MOUTH_NOSE_BOX
from aign_tf.tasks.faces import REPORTED_ATTRIBUTES, pull_push_fill


def _table(header: list[str]) -> str:
    return "| " + " | ".join(header) + " |\n" + "|---" * len(header) + "|"


def fills(images: np.ndarray, owners: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """images float32 [N, S, S, 3] in [0, 1] -> {description: the images with the mouth/nose box filled}; owners
    int [N]: whose box "another held-out face's box" pastes into each image."""
    n, size = len(images), images.shape[1]
    visible = renderers.box_mask(n, size, size, MOUTH_NOSE_BOX).numpy()
    rng = np.random.default_rng(seed)
    mean = (images * visible).sum((1, 2), keepdims=True) / visible.sum((1, 2), keepdims=True)
    content = {
        "the true face": images,
        "another held-out face's box": images[owners],
        "the mean colour of the visible pixels": np.broadcast_to(mean, images.shape),
        "uniform random colours": rng.random(images.shape, np.float32),
        "the pull-push fill": pull_push_fill(tf.constant(images * visible), tf.constant(visible)).numpy(),
    }
    return {k: images * visible + v * (1 - visible) for k, v in content.items()}


def run(cache_dir: str) -> None:
    flags = types.SimpleNamespace(**{**vars(main.program_flags()[0]), "task": "inpaint", "cache_dir": cache_dir})
    building.apply_task_defaults(flags)
    splits = building.load_splits(flags)
    probes = {"whole image": building.face_probe(flags, splits),
              "mouth/nose box": building.face_probe(flags, splits, region=MOUTH_NOSE_BOX)}
    names = list(splits.train.attribute_names)
    shown = [a for a in (*REPORTED_ATTRIBUTES, "Mustache") if a in names]
    print(_table(["probe", *shown]))
    for name, probe in probes.items():
        print(f"| {name} | " + " | ".join(f"{probe.accuracy[a]:.3f}" for a in shown) + " |")

    n = min(flags.eval_images, len(splits.test))
    images = splits.test.images[:n].astype(np.float32) / 255.0
    male = splits.test.labels[:n, names.index("Male")].astype(bool)
    owners = np.random.default_rng(1).permutation(n)
    variants = fills(images, owners)
    print("\n" + _table(["the box holds", *(f"{p}: women / men / all called Male" for p in probes)]))
    agree = {}
    for fill, x in variants.items():
        rates = []
        for p, probe in probes.items():
            called = probe.probabilities(x)[:, names.index("Male")] > 0.5
            rates.append(f"{called[~male].mean():.3f} / {called[male].mean():.3f} / {called.mean():.3f}")
            if fill == "another held-out face's box":
                agree[p] = np.mean(called == male[owners])
        print(f"| {fill} | " + " | ".join(rates) + " |")
    print("Male called as the pasted box's owner is labelled: " + ", ".join(f"{p} {a:.3f}" for p, a in agree.items()))

    identities = splits.test.identities[:n] if splits.test.identities is not None else np.arange(n)
    first, second = metrics.group_halves(identities)
    size = min(len(first), len(second))
    print(f"\nFD / KID (subsets of {size}): the first half ({len(first)} faces) with the box filled, against the "
          f"second half's true faces ({len(second)}, no person in both)")
    print(_table(["first half", *(f"{p} features" for p in probes)]))
    reference = {p: probe.features(images[second]) for p, probe in probes.items()}
    for fill in ("the true face", "the pull-push fill", "the mean colour of the visible pixels",
                 "uniform random colours"):
        cells = []
        for p, probe in probes.items():
            features = probe.features(variants[fill][first])
            kid, _ = metrics.kernel_distance(features, reference[p], subset_size=size)
            cells.append(f"{metrics.frechet_distance(features, reference[p]):.2f} / {kid:.3f}")
        print(f"| {fill} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache_dir", default="datasets/cache")
    run(parser.parse_args().cache_dir)
