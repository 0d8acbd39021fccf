"""Process level: a tiny training run read back through a real TensorBoard server's HTTP API (scalars, image grids,
the HParams dashboard, the evaluation figures and the graph of one training step)."""

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import REPO, cli

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str, body: dict | None = None):
    """JSON from TensorBoard's HTTP API: GET, or POST with a JSON body."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_tensorboard_serves_the_runs_scalars_images_hparams_eval_figures_and_graph(tmp_path, shared_cache):
    run_dir = tmp_path / "run"
    logdir = run_dir / "tensorboard"
    logdir.mkdir(parents=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # Started first: TensorBoard imports TensorFlow while the run trains, and reloads the folder every second.
    with open(tmp_path / "tensorboard.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}", f"--port={port}",
                                   "--host=127.0.0.1", "--reload_interval=1"], stdout=log, stderr=log)
    try:
        proc = subprocess.run(cli("--task=inpaint", "--bias=male", "--steps=4", "--checkpoint_every=2",
                                  "--export=false", "--adversarial_weight=0.5", f"--run_dir={run_dir}",
                                  f"--cache_dir={shared_cache}"), cwd=REPO, capture_output=True, text=True,
                             timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "step 4/4" in proc.stdout and "bias strength" in proc.stdout
        result = json.loads((run_dir / "eval.json").read_text())
        assert result["step"] == 4

        deadline, scalars = time.time() + 120, {}
        while "eval/bias_strength" not in scalars:  # until the server answers and has read the eval figures
            assert server.poll() is None, (tmp_path / "tensorboard.log").read_text()[-3000:]
            assert time.time() < deadline, f"TensorBoard never showed the eval figures: {sorted(scalars)}"
            with contextlib.suppress(urllib.error.URLError, ConnectionError):  # not listening yet
                scalars = _get(base, "/data/plugin/scalars/tags").get(".", {})
            time.sleep(0.5)

        assert _get(base, "/data/runs") == ["."]
        assert {"train/d_loss", "train/g_loss", "train/g_adversarial", "train/reconstruction"} <= set(scalars)
        attributes = {f"eval/attributes/{a}/{k}" for a in result["attributes"]
                      for k in ("rate_outputs", "rate_true", "shift", "probe_accuracy")}
        assert {"eval/bias_strength", "eval/consistency_psnr_db", "eval/psnr_vs_truth_db", "eval/ssim_vs_truth",
                *attributes} <= set(scalars), sorted(scalars)
        # The evaluation's figures at the trained step, with eval.json's values.
        for name in ("bias_strength", "psnr_vs_truth_db"):
            [[_, step, value]] = _get(base, f"/data/plugin/scalars/scalars?run=.&tag=eval/{name}")
            assert step == 4 and value == pytest.approx(result[name], rel=1e-6), name

        images = _get(base, "/data/plugin/images/tags")["."]
        assert "samples/input|output|rendered|prior" in images

        experiment = _get(base, "/data/plugin/hparams/experiment", {"experimentName": ""})
        names = {h["name"] for h in experiment["hparamInfos"]}
        assert {"task", "bias", "steps", "batch_size", "adversarial_weight", "adversarial_loss", "seed",
                "mixed_precision", "exemplars"} <= names, names
        assert not names & {"run_dir", "cache_dir", "mode", "pose_width", "tune_trials"}, names
        assert "eval/bias_strength" in {m["name"]["tag"] for m in experiment["metricInfos"]}
        [group] = _get(base, "/data/plugin/hparams/session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                                      "STATUS_RUNNING"],
            "colParams": [], "startIndex": 0, "sliceSize": 10})["sessionGroups"]
        hparams = group["hparams"]
        assert (hparams["task"], hparams["bias"], hparams["steps"], hparams["adversarial_weight"],
                hparams["jit_compile"]) == ("inpaint", "male", 4, 0.5, False), hparams

        assert _get(base, "/data/plugin/graphs/info")["."]["run_graph"] is True
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
