"""aign_tf: Adversarial Inverse Graphics Networks in TensorFlow / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="aign_tf",
    version="0.1.0",
    description="Adversarial Inverse Graphics Networks (unpaired inverse graphics with a biased prior)",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["aign_tf", "aign_tf.*", "trainers", "trainers.*"]),
    install_requires=[
        "tensorflow==2.21.0",
        "keras>=3.10,<4",
        # tensorflow-graphics pulls tensorflow-addons in as a dependency; it is never
        # imported (it fails on TF >= 2.16). See BUILD.md.
        "tensorflow-graphics==2021.12.3",
        "tensorboard>=2.19",  # tf.summary writes through it; TF 2.21 no longer depends on it
        "keras-tuner[bayesian]>=1.4.7",  # [bayesian]: scikit-learn + scipy for --tune_algorithm=bayesian
        "absl-py>=2.1",
        "numpy>=1.26",
        "pillow>=10",
    ],
    extras_require={
        "test": ["pytest>=8", "ruff>=0.6"],
        "tfds": ["tensorflow-datasets>=4.9"],
    },
)
