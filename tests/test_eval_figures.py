"""The face evaluation's report: the prior named in eval.json and in the table (aign_tf.tasks.faces
FaceTask.evaluate, aign_tf.main.format_eval_table)."""

import keras
import numpy as np

from aign_tf.main import format_eval_table
from aign_tf.tasks.faces import FaceTaskConfig, InpaintTask

TINY = 32


def _task(splits, **kwargs):
    keras.utils.set_random_seed(0)
    config = FaceTaskConfig(image_size=TINY, g_filters=4, d_filters=4, **{"bias": "male", **kwargs})
    return InpaintTask(config, splits, log=lambda *_: None)


def test_with_prior_dir_eval_and_export_name_the_prior_dir_not_the_bias(tmp_path, tiny_splits):
    from aign_tf import formats

    prior = tmp_path / "one_person"
    rng = np.random.default_rng(0)
    for i in range(3):
        formats.write_image(str(prior / f"face_{i}.png"), rng.random((40, 40, 3)))
    task = _task(tiny_splits, prior_dir=str(prior))  # --bias keeps its default, male, which the prior ignores
    result = task.evaluate(task.generator, str(tmp_path / "run"))
    assert result["bias"] is None and result["prior_dir"] == str(prior)
    assert "3 images from --prior_dir" in result["prior"]
    header = format_eval_table(result).splitlines()[0]
    assert header == f"evaluation: task=inpaint prior_dir={prior} on 16 held-out images"
    assert task.export_metadata()["bias"] is None and task.export_metadata()["prior_dir"] == str(prior)
