"""An unset --jit_compile: the faster of XLA and tf.function measured once per machine and settings, cached; a
resumed run keeps the choice its folder recorded."""

import json
import types

from conftest import TINY

from aign_tf import building, main, runs
from trainers import compile_choice
from trainers.loop import TrainConfig


def _fake_measure(times, calls):
    def measure(make_task, config):
        calls.append(config)
        return dict(times)

    return measure


def test_the_faster_mode_is_chosen_measured_once_and_cached(tmp_path):
    calls, cache = [], str(tmp_path / "cache")
    settings = {"task": "inpaint", "batch_size": 16}
    slow_xla = _fake_measure({"tf_function_ms": 30.0, "xla_ms": 45.0}, calls)
    assert compile_choice.choose_jit_compile(None, TrainConfig(), settings, cache, log=print, measure_fn=slow_xla) \
        is False
    assert len(calls) == 1
    # Cached: not measured again, whatever a new measurement would say.
    fast_xla = _fake_measure({"tf_function_ms": 30.0, "xla_ms": 10.0}, calls)
    assert compile_choice.choose_jit_compile(None, TrainConfig(), settings, cache, measure_fn=fast_xla) is False
    assert len(calls) == 1
    # Other settings shape another step: measured for them.
    other = {**settings, "batch_size": 64}
    assert compile_choice.choose_jit_compile(None, TrainConfig(), other, cache, measure_fn=fast_xla) is True
    assert len(calls) == 2
    entries = json.loads((tmp_path / "cache" / compile_choice.CACHE_FILE).read_text())
    assert sorted(e["jit_compile"] for e in entries.values()) == [False, True]
    assert all(e["cpu_model"] and e["xla_ms"] > 0 for e in entries.values())


def test_cache_key_follows_the_machine_and_the_settings():
    machine = {"cpu_model": "A", "cores": 2, "logical_cpus": 2, "tensorflow": "2.21.0", "keras": "3", "gpus": 0}
    key = compile_choice.cache_key(machine, {"task": "inpaint"})
    assert key == compile_choice.cache_key({**machine, "cpu_mhz": 1234.0}, {"task": "inpaint"})  # clock varies
    assert key != compile_choice.cache_key({**machine, "cores": 8}, {"task": "inpaint"})
    assert key != compile_choice.cache_key({**machine, "tensorflow": "2.22.0"}, {"task": "inpaint"})
    assert key != compile_choice.cache_key(machine, {"task": "superres"})


def test_the_trial_times_both_modes_on_new_tasks(tiny_splits):
    """The real measurement at tiny size: both modes time positive steps on tasks of their own, so the run's
    networks are never trained by the trial."""
    from aign_tf.tasks.faces import FaceTaskConfig, InpaintTask

    made = []

    def make_task():
        made.append(InpaintTask(FaceTaskConfig(image_size=TINY, exemplars=8), tiny_splits, log=lambda *_: None))
        return made[-1]

    times = compile_choice.measure(make_task, TrainConfig(batch_size=4, steps=4), steps=1, warmup_steps=1)
    assert set(times) == {"tf_function_ms", "xla_ms"} and min(times.values()) > 0
    assert len(made) == 2 and made[0].generator is not made[1].generator


def test_an_unset_flag_takes_the_recorded_choice_of_a_resumed_run_and_does_not_measure_outside_training(tmp_path):
    values = types.SimpleNamespace(**{**vars(main.flag_defaults()), "mode": "train", "cache_dir": str(tmp_path)})
    building.apply_task_defaults(values)
    run_dir = tmp_path / "run"
    runs.write_settings(str(run_dir), runs.defining_settings(values),
                        runs.recorded_settings(types.SimpleNamespace(**{**vars(values), "jit_compile": True})))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    assert main.jit_compile_choice(str(run_dir), values, splits=None) is True  # no trial: splits unused
    for mode in ("eval", "export", "predict"):
        assert main.jit_compile_choice(str(tmp_path / "new"), types.SimpleNamespace(**{**vars(values), "mode": mode}),
                                       splits=None) is False
