"""Splitting face images into train / valid / test by identity, stratified by sex.

No person may appear in two splits (a test face whose identity was trained on measures memory, not
inference), and men and women must both be well represented in every split (the bias figures compare
the two). Used by scripts/layout_celeba_subset.py to write a ``list_eval_partition.txt``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2  # list_eval_partition.txt's codes


def identity_sex(identities: Mapping[str, str], male: Mapping[str, bool]) -> dict[str, bool]:
    """identities: file -> identity; male: file -> its Male label. Returns identity -> True if the majority
    of its images are labelled Male (strictly more than half; a tie counts as not male). A file of
    ``identities`` without a Male label -> ValueError naming it."""
    counts: dict[str, list[int]] = {}
    for name, identity in identities.items():
        if name not in male:
            raise ValueError(f"{name} (identity {identity}) has no Male label")
        count = counts.setdefault(identity, [0, 0])
        count[0] += bool(male[name])
        count[1] += 1
    return {identity: 2 * n_male > n for identity, (n_male, n) in counts.items()}


def split_by_identity(identities: Mapping[str, str], male: Mapping[str, bool], n_test: int, n_valid: int,
                      min_male_fraction: float, seed: int) -> dict[str, int]:
    """Assigns every file to 0 (train), 1 (valid) or 2 (test) so that no identity is in two splits.

    identities: file -> identity (any string); male: file -> Male label (an identity's sex is the majority
    label over its images, :func:`identity_sex`). ``n_test`` and ``n_valid`` identities are held out; each
    held-out split gets ``max(round(n * overall male fraction), ceil(min_male_fraction * n))`` male
    identities (stratified by sex, never below the minimum), the rest women; train keeps every other
    identity and must keep at least one man and one woman. Deterministic for a ``seed`` (identities are
    sorted, then each sex is permuted with ``np.random.default_rng(seed)``).
    Returns file -> split code. Too few identities of either sex for these counts -> ValueError saying
    how many there are and how many are needed.
    """
    if n_test < 1 or n_valid < 0:
        raise ValueError(f"expected n_test >= 1 and n_valid >= 0 identities, got n_test={n_test}, "
                         f"n_valid={n_valid}")
    if not 0.0 <= min_male_fraction <= 1.0:
        raise ValueError(f"min_male_fraction must be in [0, 1], got {min_male_fraction}")
    sex = identity_sex(identities, male)
    men = sorted(i for i, is_male in sex.items() if is_male)
    women = sorted(i for i, is_male in sex.items() if not is_male)
    if not sex:
        raise ValueError("no identities to split")
    fraction = len(men) / len(sex)
    wanted = {}  # split -> (men, women)
    for split, n in ((TEST, n_test), (VALID, n_valid)):
        n_men = min(n, max(round(n * fraction), math.ceil(min_male_fraction * n - 1e-9)))
        wanted[split] = (n_men, n - n_men)
    need_men = sum(m for m, _ in wanted.values()) + 1
    need_women = sum(w for _, w in wanted.values()) + 1
    if len(men) < need_men or len(women) < need_women:
        raise ValueError(
            f"too few identities to split: {len(men)} male and {len(women)} female (by the majority Male label "
            f"of their images) of {len(sex)}; a test split of {n_test} identities with {wanted[TEST][0]} men "
            f"(at least {min_male_fraction:.0%}) and a valid split of {n_valid} with {wanted[VALID][0]} men "
            f"need at least {need_men} male and {need_women} female identities (train keeps one of each)")
    rng = np.random.default_rng(seed)
    assignment: dict[str, int] = {}
    for group, column in ((men, 0), (women, 1)):
        order = [group[k] for k in rng.permutation(len(group))]
        start = 0
        for split in (TEST, VALID):
            count = wanted[split][column]
            assignment.update((identity, split) for identity in order[start:start + count])
            start += count
        assignment.update((identity, TRAIN) for identity in order[start:])
    return {name: assignment[identity] for name, identity in identities.items()}


def summarize(identities: Mapping[str, str], male: Mapping[str, bool], split: Mapping[str, int]) -> dict:
    """split code -> {"identities", "images", "male_identities", "male_images"} for a file -> split map."""
    sex = identity_sex(identities, male)
    out = {code: {"identities": set(), "images": 0, "male_images": 0} for code in (TRAIN, VALID, TEST)}
    for name, code in split.items():
        entry = out[code]
        entry["identities"].add(identities[name])
        entry["images"] += 1
        entry["male_images"] += bool(male[name])
    return {code: {"identities": len(e["identities"]), "images": e["images"],
                   "male_identities": sum(sex[i] for i in e["identities"]), "male_images": e["male_images"]}
            for code, e in out.items()}
