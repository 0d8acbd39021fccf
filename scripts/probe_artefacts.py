"""How the attribute probe reads a mouth/nose box filled with content that carries no attribute.

    python scripts/probe_artefacts.py [--cache_dir=datasets/cache]

On the first 1000 held-out built-in faces (the eval set), replaces the mouth/nose box with a flat mean colour or
one of four kinds of noise and prints the fraction the probe calls Male (probability > 0.5) among women, men and
all. A trustworthy instrument gives about the same rate as the unmodified faces.
"""

import argparse
import types

import numpy as np

from aign_tf import main
from aign_tf.data.synthetic_faces import MOUTH_NOSE_BOX


def fills(images: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """images float32 [N, S, S, 3] in [0, 1] -> {description: images with the mouth/nose box filled}."""
    size = images.shape[1]
    top, left, bottom, right = (round(f * size) for f in MOUTH_NOSE_BOX)
    visible = np.ones((size, size, 1), np.float32)
    visible[top:bottom, left:right] = 0
    mean = (images * visible).sum((1, 2), keepdims=True) / visible.sum()
    blocks = np.repeat(np.repeat(rng.standard_normal((len(images), -(-size // 4), -(-size // 4), 3)), 4, 1), 4, 2)
    content = {
        "nothing (the true faces)": images,
        "the mean colour": np.broadcast_to(mean, images.shape),
        "uniform random colours": rng.random(images.shape),
        "mean + Gaussian colour noise (std 0.1)": mean + 0.1 * rng.standard_normal(images.shape),
        "mean + Gaussian grey noise (std 0.1)": mean + 0.1 * rng.standard_normal(images.shape[:3] + (1,)),
        "mean + 4x4 colour blocks (std 0.15)": mean + 0.15 * blocks[:, :size, :size],
    }
    return {k: images * visible + np.clip(v, 0, 1).astype(np.float32) * (1 - visible) for k, v in content.items()}


def run(cache_dir: str) -> None:
    flags = types.SimpleNamespace(**{**vars(main.program_flags()[0]), "task": "inpaint", "cache_dir": cache_dir})
    main.apply_task_defaults(flags)
    splits = main.load_splits(flags)
    probe = main.face_probe(flags, splits)
    male_index = list(probe.attribute_names).index("Male")
    n = min(flags.eval_images, len(splits.test))
    images = splits.test.images[:n].astype(np.float32) / 255.0
    male = splits.test.labels[:n, male_index].astype(bool)
    print("| mouth/nose box filled with | probe Male rate: women / men / all |\n|---|---|")
    for name, x in fills(images, np.random.default_rng(0)).items():
        called = probe.probabilities(x)[:, male_index] > 0.5
        print(f"| {name} | {called[~male].mean():.3f} / {called[male].mean():.3f} / {called.mean():.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache_dir", default="datasets/cache")
    run(parser.parse_args().cache_dir)
