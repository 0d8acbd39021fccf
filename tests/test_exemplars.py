"""--exemplars: the straight-through choice among prior faces, how each face task composes it, export."""

import numpy as np
import pytest
import tensorflow as tf

from aign_tf import export, losses, renderers
from aign_tf.blending import pull_push_fill
from aign_tf.networks.image import ExemplarChoice
from aign_tf.tasks.faces import FaceTaskConfig, InpaintTask, SuperResTask, _coordinates
from trainers.loop import TrainConfig, Trainer, weights_digest

TINY = 32


def _task(splits, task_cls=InpaintTask, exemplars=8, **kwargs):
    import keras

    keras.utils.set_random_seed(0)
    config = FaceTaskConfig(image_size=TINY, g_filters=8, d_filters=8, exemplars=exemplars,
                            **{"bias": "male", **kwargs})
    return task_cls(config, splits, log=lambda *_: None)


def test_choice_is_one_bank_image_with_the_softmax_mixtures_gradient():
    rng = np.random.default_rng(0)
    bank = rng.random((5, 4, 4, 3)).astype(np.float32)
    layer = ExemplarChoice(bank.shape, temperature=0.5)
    logits = tf.constant(rng.normal(size=(3, 5)), tf.float32)
    layer.build(None)
    layer.bank.assign(bank)
    out = layer(logits)
    np.testing.assert_array_equal(out, bank[np.argmax(logits, -1)])

    weights = tf.constant(rng.normal(size=(3, 4, 4, 3)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        chosen = tf.reduce_sum(layer(logits) * weights)
        mixture = tf.reduce_sum(tf.einsum("bk,khwc->bhwc", tf.nn.softmax(logits / 0.5), bank) * weights)
    np.testing.assert_allclose(tape.gradient(chosen, logits), tape.gradient(mixture, logits), rtol=1e-5, atol=1e-6)


def test_inpainting_fills_the_hole_with_a_prior_faces_hole_and_keeps_the_visible_pixels(tiny_splits):
    task = _task(tiny_splits)
    G = task.generator
    assert {layer.name for layer in G.layers}.isdisjoint({"down0_a", "delta"})  # no U-Net: the choice is all
    prior = {image.tobytes() for image in task.prior}
    bank = np.round(G.get_layer("exemplar_choice").bank.numpy() * 255).astype(np.uint8)
    assert bank.shape == (8, TINY, TINY, 3) and all(image.tobytes() in prior for image in bank)

    batch = next(iter(task.train_dataset(4, 0, 0)))
    out = task.generate(G, batch, training=True).numpy()
    mask = batch["mask"].numpy()
    np.testing.assert_array_equal(out * mask, batch["observation"].numpy() * mask)
    hole = mask[0, ..., 0] < 0.5  # the fixed mouth/nose box
    for face in out:
        assert min(np.abs(face[hole] - b[hole] / 255.0).max() for b in bank) < 1e-6
    # Training draws its Gumbel noise from (seed, step): the same step chooses the same, evaluation takes the argmax.
    np.testing.assert_array_equal(out, task.generate(G, batch, training=True))
    evaluated = task.generate(G, batch, training=False)
    np.testing.assert_array_equal(evaluated, task.generate(G, {k: v for k, v in batch.items() if k != "step"},
                                                           training=False))


def test_exemplars_train_under_xla_with_the_balance_term_and_move_only_the_choice(tmp_path, tiny_splits):
    task = _task(tiny_splits, exemplar_balance=0.5)
    batch = next(iter(task.train_dataset(4, 0, 0)))
    terms = task.losses(batch, task.generate(task.generator, batch, training=True))
    logits = task.exemplar_logits(task.generator, batch)
    chosen = tf.argmax(logits + task.exemplar_gumbel(batch), -1)
    np.testing.assert_allclose(float(terms["exemplar_balance"]),
                               0.5 * float(losses.load_balancing_loss(logits, chosen)), rtol=1e-6)
    trainer = Trainer(task, TrainConfig(steps=2, batch_size=4, jit_compile=True, checkpoint_every=1, log_every=1,
                                        image_every=1), str(tmp_path / "run"), log=lambda *_: None)
    before = task.generator.get_layer("select_logits").kernel.numpy().copy()
    bank = weights_digest(task.generator.get_layer("exemplar_choice"))
    assert trainer.train() == 2
    assert not np.array_equal(before, task.generator.get_layer("select_logits").kernel.numpy())
    assert weights_digest(task.generator.get_layer("exemplar_choice")) == bank  # the bank is not trained


def test_superres_output_is_the_input_plus_the_chosen_faces_detail_and_renders_to_the_input_exactly(tiny_splits):
    import keras

    task = _task(tiny_splits, SuperResTask)
    assert not any(isinstance(layer, keras.Model) for layer in task.generator.layers)  # no U-Net: the choice alone
    batch = next(iter(task.train_dataset(4, 0, 0)))
    out = task.generate(task.generator, batch, training=False)
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    np.testing.assert_allclose(task.render(out, batch), batch["observation"], atol=1e-5)
    exemplar = task.generator({**task.generator_inputs(batch), "logit_offset": tf.zeros([4, 8])})["exemplar"]
    up = lambda x: renderers.block_upsample(x, task.config.factor)  # noqa: E731
    detail = exemplar - up(task.render(exemplar, batch))
    assert float(tf.reduce_max(tf.abs(detail))) > 0.01
    expected = renderers.downsample_consistent(up(batch["observation"]) + detail, batch["observation"],
                                               task.config.factor)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert float(tf.reduce_max(tf.abs(out - up(batch["observation"])))) > 0.01  # the detail survives


def test_more_exemplars_than_prior_images_take_the_whole_prior_and_say_so(tiny_splits):
    import keras

    keras.utils.set_random_seed(0)
    messages = []
    task = InpaintTask(FaceTaskConfig(image_size=TINY, bias="male", exemplars=500), tiny_splits, log=messages.append)
    n = len(task.prior)
    assert task.config.exemplars == n and task.generator.get_layer("exemplar_choice").bank.shape[0] == n
    assert any(f"--exemplars=500: the prior holds {n} faces" in m for m in messages)


def test_exported_exemplar_inpainter_serves_the_bank_without_the_task(tmp_path, tiny_splits):
    task = _task(tiny_splits)
    G = task.generator
    signature = task.serving_signature()
    path = export.export_for_serving(lambda **inputs: task.serve(G, **inputs), signature, str(tmp_path), "ex",
                                     trackables=[G])
    batch = next(iter(task.train_dataset(4, 0, 0)))
    image, mask = batch["truth"], batch["mask"]
    served = export.load_serving_fn(path)(image=image, mask=mask)
    expected = task.serve(G, image, mask)
    np.testing.assert_allclose(served["face"], expected["face"], atol=1e-6)


@pytest.mark.parametrize("task_cls", [InpaintTask, SuperResTask])
def test_exported_model_carries_the_match_terms_and_serves_as_in_process(tmp_path, tiny_splits, task_cls):
    task = _task(tiny_splits, task_cls, exemplar_match=300.0)  # the defaults' configuration
    G = task.generator
    path = export.export_for_serving(lambda **inputs: task.serve(G, **inputs), task.serving_signature(),
                                     str(tmp_path), "ex", trackables=[G])
    saved = [name for name, _ in tf.train.list_variables(f"{path}/variables/variables")]
    assert any("match_rendered/" in n for n in saved) and any("match_rendered_sq/" in n for n in saved)
    batch = next(iter(task.train_dataset(4, 0, 0)))
    inputs = ({"image": batch["truth"], "mask": batch["mask"]} if task_cls is InpaintTask
              else {"image": batch["observation"]})
    served = export.load_serving_fn(path)(**inputs)
    np.testing.assert_allclose(served["face"], task.serve(G, **inputs)["face"], atol=1e-6)


def test_evaluation_reports_how_many_exemplars_the_held_out_inputs_use(tmp_path, tiny_splits):
    task = _task(tiny_splits)
    result = task.evaluate(task.generator, str(tmp_path))
    n = result["eval_images"]
    batch = task._eval_batch(tiny_splits.test.images[:n])
    out = task.generate(task.generator, batch, training=False).numpy()
    bank = task.generator.get_layer("exemplar_choice").bank.numpy()
    hole = batch["mask"].numpy()[0, ..., 0] < 0.5
    chosen = [int(np.argmin([np.abs(face[hole] - b[hole]).max() for b in bank])) for face in out]
    counts = np.bincount(chosen)
    assert result["exemplars_used"] == np.count_nonzero(counts)
    assert result["exemplar_top_share"] == pytest.approx(counts.max() / n)


@pytest.mark.parametrize("bias,attribute", [("male", "Male"), ("old", "Young"), ("none", None)])
def test_evaluation_png_shows_faces_with_and_without_the_bias_attribute(tmp_path, tiny_splits, monkeypatch, bias,
                                                                        attribute):
    from aign_tf import formats

    task = _task(tiny_splits, bias=bias)
    test = tiny_splits.test
    names = list(test.attribute_names)
    shown = task.sample_indices(test.labels, names)
    if attribute is None:
        np.testing.assert_array_equal(shown, np.arange(8))
    else:
        has = test.labels[:, names.index(attribute)] > 0
        if attribute == "Male":  # the first 8 are not balanced here: the selection has work to do
            assert has[:8].sum() != 4
        np.testing.assert_array_equal(shown, np.sort(np.concatenate([np.flatnonzero(has)[:4],
                                                                     np.flatnonzero(~has)[:4]])))
    rows = []
    monkeypatch.setattr(formats, "image_grid", lambda r: rows.extend(r) or np.zeros((4, 4, 3), np.float32))
    task.evaluate(task.generator, str(tmp_path))
    assert len(rows) == 8
    for row, j in zip(rows, shown, strict=True):  # observation | output | truth of the shown example
        np.testing.assert_allclose(row[2], test.images[j] / 255.0)
        np.testing.assert_allclose(row[0], task._eval_batch(test.images[j:j + 1])["observation"][0], atol=1e-6)


def test_superres_exemplars_train_with_ema_under_mixed_bfloat16(tmp_path, tiny_splits):
    task = _task(tiny_splits, SuperResTask, dtype_policy="mixed_bfloat16")
    trainer = Trainer(task, TrainConfig(steps=1, batch_size=4, mixed_precision="mixed_bfloat16", jit_compile=False,
                                        ema_decay=0.9, checkpoint_every=1, log_every=1, image_every=1),
                      str(tmp_path / "run"), log=lambda *_: None)
    assert trainer.train() == 1
    ema = trainer.ema_generator
    bank = task.generator.get_layer("exemplar_choice").bank
    np.testing.assert_array_equal(ema.get_layer("exemplar_choice").bank, bank)  # cloned, not averaged
    batch = next(iter(task.train_dataset(4, 0, 0)))
    assert task.generate(ema, batch, training=False).dtype == tf.float32


@pytest.mark.parametrize("task_cls", [InpaintTask, SuperResTask])
def test_match_error_is_each_exemplars_reconstruction_error_and_enters_the_logits(tiny_splits, task_cls):
    task = _task(tiny_splits, task_cls, exemplar_match=50.0)
    batch = next(iter(task.train_dataset(4, 0, 0)))
    bank = task.generator.get_layer("exemplar_choice").bank.numpy()
    error = task.exemplar_match_error(task.exemplar_match_terms(bank), batch).numpy()
    for b in range(4):
        for k in range(len(bank)):
            single = {**{key: v[b:b + 1] for key, v in batch.items() if key != "step"}, "step": batch["step"]}
            expected = float(tf.reduce_mean(tf.square(task.render(bank[k:k + 1], single) - single["observation"])))
            if task_cls is InpaintTask:  # mean over the visible values only
                mask = single["mask"].numpy()
                diff = (bank[k:k + 1] - single["observation"].numpy()) ** 2 * mask
                expected = diff.sum() / (mask.sum() * 3)
            np.testing.assert_allclose(error[b, k], expected, rtol=1e-4, atol=1e-6)
    learned = task.exemplar_logits(task.generator, batch) + 50.0 * error  # the learned part alone
    np.testing.assert_allclose(learned, task.generator({**task.generator_inputs(batch),
                                                        "logit_offset": tf.zeros([4, len(bank)])})["logits"],
                               atol=1e-4)


# --- what a step does not recompute (pull-push fill, the rendered bank): the results are those of the full work ---
def _uncached_match_error(task, bank, batch):
    """The match error as it was computed before the match terms were kept beside the bank: the bank rendered and
    squared on every call, einsums over every observed value (weights broadcast over the channels)."""
    rendered = task.observable(tf.convert_to_tensor(bank))
    obs = batch["observation"]
    weights = task.consistency_weights(batch)
    weights = tf.ones_like(obs) if weights is None else tf.broadcast_to(weights, tf.shape(obs))
    cross = tf.einsum("bhwc,khwc->bk", weights * obs, rendered)
    bank_sq = tf.einsum("bhwc,khwc->bk", weights, rendered * rendered)
    obs_sq = tf.reduce_sum(weights * obs * obs, axis=[1, 2, 3])[:, None]
    return (bank_sq - 2.0 * cross + obs_sq) / tf.maximum(tf.reduce_sum(weights, axis=[1, 2, 3])[:, None], 1.0)


def _uncached_generate(task, batch, training):
    """task.generate as it was: the inpainting base filled by pull-push, the match error recomputed from the bank."""
    G = task.generator
    obs = batch["observation"]
    if isinstance(task, InpaintTask):
        inputs = {"condition": tf.concat([obs, batch["mask"], _coordinates(obs)], -1),
                  "base": pull_push_fill(obs, batch["mask"])}
    else:
        up = renderers.block_upsample(obs, task.config.factor)
        inputs = {"condition": up, "base": up}
    offset = -task.config.exemplar_match * _uncached_match_error(task, G.get_layer("exemplar_choice").bank, batch)
    if training:
        offset += task.exemplar_gumbel(batch)
    out = G({**inputs, "logit_offset": offset}, training=training)
    return task.compose(out["face"], out["exemplar"], batch), out["logits"]


@pytest.mark.parametrize("task_cls,mask", [(InpaintTask, "mouth_nose"), (InpaintTask, "random_box"),
                                           (SuperResTask, "mouth_nose")])
def test_generate_and_serve_equal_the_uncached_computation(tiny_splits, task_cls, mask):
    task = _task(tiny_splits, task_cls, exemplar_match=300.0, mask=mask)
    G = task.generator
    batch = next(iter(task.train_dataset(8, 0, 3)))
    for training in (True, False):
        expected, logits = _uncached_generate(task, batch, training)
        out = task._call_generator(G, batch, training)
        np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(np.argmax(out["logits"], -1), np.argmax(logits, -1))
        np.testing.assert_allclose(task.generate(G, batch, training), expected, atol=1e-6)
    image = batch["truth"]
    if task_cls is InpaintTask:
        served = task.serve(G, image, batch["mask"])
        face = tf.clip_by_value(_uncached_generate(task, {"observation": image * batch["mask"], "mask": batch["mask"]},
                                                   False)[0], 0.0, 1.0)
        np.testing.assert_allclose(served["face"], face, atol=1e-6)
        np.testing.assert_allclose(served["composite"], image * batch["mask"] + face * (1.0 - batch["mask"]), atol=1e-6)
    else:
        small = batch["observation"]
        face = tf.clip_by_value(_uncached_generate(task, {"observation": small}, False)[0], 0.0, 1.0)
        np.testing.assert_allclose(task.serve(G, small)["face"], face, atol=1e-6)


@pytest.mark.parametrize("task_cls", [InpaintTask, SuperResTask])
def test_traced_graphs_neither_fill_the_hole_nor_render_the_bank(tmp_path, tiny_splits, task_cls):
    """With exemplars (the default) the inpainting output keeps only the observation's visible pixels and the
    chosen face's hole, so the pull-push fill (AvgPool, ResizeBilinear) is not computed; the bank is read by the
    choice alone (the match term reads the terms kept beside it), not rendered or squared on every call."""
    task = _task(tiny_splits, task_cls, exemplar_match=300.0)
    k = task.config.exemplars
    batch = next(iter(task.train_dataset(4, 0, 0)))
    trainer = Trainer(task, TrainConfig(steps=1, batch_size=4, jit_compile=False), str(tmp_path / "run"),
                      log=lambda *_: None)
    graphs = {"generate": tf.function(lambda b: task.generate(task.generator, b, training=False)),
              "train step": trainer._train_step}
    for name, fn in graphs.items():
        ops = fn.get_concrete_function(batch).graph.get_operations()
        if task_cls is InpaintTask:
            assert not [op.name for op in ops if op.type in ("AvgPool", "ResizeBilinear")], name
        on_bank = [op.name for op in ops if op.type not in ("ReadVariableOp", "Identity", "Einsum")
                   and any(t.shape.rank == 4 and t.shape[0] == k for t in op.outputs)]
        assert not on_bank, (name, on_bank)  # nothing computes a [K, h, w, 3] tensor: no render of the bank
        assert len([op for op in ops if op.type == "Einsum" and "exemplar_choice" not in op.name]) == 0, name
    if task_cls is InpaintTask:  # the U-Net inpainter starts from the fill: the check above sees it where it runs
        unet = _task(tiny_splits, exemplars=0)
        ops = tf.function(lambda b: unet.generate(unet.generator, b, training=False)).get_concrete_function(
            batch).graph.get_operations()
        assert any(op.type == "AvgPool" for op in ops)


@pytest.mark.parametrize("task_cls", [InpaintTask, SuperResTask])
def test_match_terms_follow_the_bank_through_set_bank_and_checkpoint_restores(tmp_path, tiny_splits, task_cls):
    task = _task(tiny_splits, task_cls, exemplar_match=300.0)
    batch = next(iter(task.train_dataset(4, 0, 0)))

    def assert_terms_match_the_bank(task):
        choice = task.generator.get_layer("exemplar_choice")
        cached = task.exemplar_match_error((choice.match_rendered, choice.match_rendered_sq), batch)
        np.testing.assert_allclose(cached, _uncached_match_error(task, choice.bank, batch), rtol=1e-5, atol=1e-6)
        return choice.bank.numpy()

    first = assert_terms_match_the_bank(task)
    other = (task.prior[-8:].astype(np.float32) / 255.0)[::-1]  # other faces than the task's bank
    assert not np.array_equal(other, first)
    task.generator.get_layer("exemplar_choice").set_bank(other, task.exemplar_match_terms(other))
    assert_terms_match_the_bank(task)

    # A run whose bank is `other` (its EMA copy too) is checkpointed; a new task (its own bank, `first`) resumes it.
    config = TrainConfig(steps=1, batch_size=4, jit_compile=False, ema_decay=0.9)
    Trainer(task, config, str(tmp_path / "run"), log=lambda *_: None).manager.save()
    resumed = _task(tiny_splits, task_cls, exemplar_match=300.0)
    np.testing.assert_array_equal(assert_terms_match_the_bank(resumed), first)
    trainer = Trainer(resumed, config, str(tmp_path / "run"), log=lambda *_: None)
    assert trainer.restore() == 0 and trainer.manager.latest_checkpoint
    np.testing.assert_array_equal(assert_terms_match_the_bank(resumed), other)
    ema = trainer.ema_generator.get_layer("exemplar_choice")
    np.testing.assert_array_equal(ema.bank, other)
    np.testing.assert_allclose(ema.match_rendered, task.exemplar_match_terms(other)[0], atol=1e-7)

    # The checkpoint holds the bank, not what is derived from it; a run without the match term resumes it too.
    names = [name for name, _ in tf.train.list_variables(trainer.manager.latest_checkpoint)]
    assert any("/bank/" in n for n in names) and not any("match_rendered" in n for n in names)
    plain = _task(tiny_splits, task_cls, exemplar_match=0.0)
    Trainer(plain, config, str(tmp_path / "run"), log=lambda *_: None).restore()
    np.testing.assert_array_equal(plain.generator.get_layer("exemplar_choice").bank, other)
