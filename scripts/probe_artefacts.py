"""How the attribute probe reads the mouth/nose box: content that carries no attribute, and real facial hair.

    python scripts/probe_artefacts.py [--cache_dir=datasets/cache]

On the first 1000 held-out built-in faces (the eval set), prints the fraction the probe calls Male (probability
> 0.5) among women, men and all when
  * the mouth/nose box holds a flat mean colour or one of four kinds of noise: a trustworthy instrument gives
    about the same rate as the unmodified faces, or a lower one (no facial hair is a female cue);
  * the box holds the mean man's or woman's box (a blurred nose and mouth) under grey noise: noise over a face's
    shapes is not stubble either (probe v4 called 95 % of the women with the mean woman's box + noise Male);
  * the box holds a random man's box, or the women are redrawn with stubble, a mustache or a full beard: how
    far real male cues in the region a prediction controls can move the rate, i.e. the largest bias strength
    the probe can report (about half of that rate's rise among women).
"""

import argparse
import types

import numpy as np

from aign_tf import main
from aign_tf.data import synthetic_faces


def fills(images: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """images float32 [N, S, S, 3] in [0, 1] -> {description: images with the mouth/nose box filled}."""
    size = images.shape[1]
    top, left, bottom, right = synthetic_faces.mouth_nose_pixels(size)
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


def paste_box(images: np.ndarray, content: np.ndarray) -> np.ndarray:
    """images float32 [N, S, S, 3] -> the same with the mouth/nose box taken from ``content`` (broadcastable)."""
    top, left, bottom, right = synthetic_faces.mouth_nose_pixels(images.shape[1])
    out = images.copy()
    out[:, top:bottom, left:right] = np.clip(np.broadcast_to(content, images.shape)[:, top:bottom, left:right], 0, 1)
    return out


def with_facial_hair(kinds: tuple[str, ...]):
    """A synthetic_faces ``edit``: every woman gets the facial hair ``kinds`` (stubble is not drawn under a beard,
    as for men)."""
    def edit(p):
        women = ~p["male"]
        q = {k: (p[k] | women) if k in kinds else v for k, v in p.items()}
        q["stubble"] = q["stubble"] & ~q["beard"]
        return q
    return edit


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
    variants = fills(images, np.random.default_rng(0))
    variants["a random man's box"] = paste_box(images, images[np.random.default_rng(1).choice(np.flatnonzero(male), n)])
    grey = 0.15 * np.random.default_rng(2).standard_normal(images.shape[:3] + (1,)).astype(np.float32)
    for sex, chosen in (("man", male), ("woman", ~male)):
        name = f"the mean {sex}'s box + Gaussian grey noise (std 0.15)"
        variants[name] = paste_box(images, images[chosen].mean(0) + grey)
    for kinds in (("stubble",), ("stubble", "mustache"), ("beard",)):
        redrawn, _ = synthetic_faces.generate_faces(n, flags.data_seed, flags.image_size, start=flags.num_train,
                                                    edit=with_facial_hair(kinds))
        variants[f"(women redrawn with {' + '.join(kinds)})"] = redrawn.astype(np.float32) / 255.0
    for name, x in variants.items():
        called = probe.probabilities(x)[:, male_index] > 0.5
        print(f"| {name} | {called[~male].mean():.3f} / {called[male].mean():.3f} / {called.mean():.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache_dir", default="datasets/cache")
    run(parser.parse_args().cache_dir)
