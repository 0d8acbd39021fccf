"""Shared fixtures: tiny built-in face data and the CLI flags every process-level test uses."""

import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = 32  # image size for tests


@pytest.fixture(scope="session")
def tiny_splits():
    from aign_tf.data.faces import FaceArrays, FaceSplits
    from aign_tf.data.synthetic_faces import ATTRIBUTE_NAMES, generate_faces

    x, y = generate_faces(96, seed=0, image_size=TINY)
    names = tuple(ATTRIBUTE_NAMES)
    return FaceSplits(FaceArrays(x[:80], y[:80], names), FaceArrays(x[80:], y[80:], names), "builtin", 0)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One cache dir (built-in data, attribute probe) shared by the CLI tests of a session."""
    return str(tmp_path_factory.mktemp("cache"))


def cli(*args: str) -> list[str]:
    """The tiny-size CLI invocation used by process-level tests."""
    return [sys.executable, "-m", "aign_tf.main", f"--image_size={TINY}", "--num_train=64", "--num_test=16",
            "--eval_images=16", "--batch_size=4", "--probe_epochs=1", "--nojit_compile", "--log_every=5",
            "--image_every=10", *args]
