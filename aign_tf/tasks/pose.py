"""3D human pose from 2D joints (``pose3d``).

The generator lifts 2D joints (with confidences and the focal length) to a canonical root-relative 3D
skeleton and a camera (rotation, root depth); the renderer is a perspective camera
(``renderers.perspective_render``, tensorflow-graphics); the reconstruction loss is the confidence-weighted
2D reprojection error; the discriminator compares predicted canonical skeletons with an unpaired
motion-capture collection through structure-aware features (bones, lengths, angles); an optional paired
term supervises a fraction of the training set.

Factors are a dict: ``pose`` `[B, J, 3]` canonical mm (joint 0 at the origin), ``rotation`` `[B, 3, 3]`,
``translation`` `[B, 3]` mm.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from aign_tf import drawing, formats, losses, metrics, renderers
from aign_tf.data.poses import PoseArrays, PoseSplits
from aign_tf.data.stream import step_indexed
from aign_tf.networks.pose import POSE_SCALE, pose_discriminator, pose_generator
from aign_tf.tasks.base import Batch, Task


@dataclasses.dataclass
class PoseTaskConfig:
    nominal_depth_mm: float = 5000.0  # the generator predicts the root depth relative to this
    nominal_focal: float = 2.3  # normalised focal length assumed when a caller gives none (serving default)
    width: int = 512  # generator hidden width
    blocks: int = 2  # generator residual blocks
    d_width: int = 256  # discriminator hidden width
    dtype_policy: str = "float32"
    paired_fraction: float = 0.0
    eval_images: int = 2000
    data_seed: int = 0


def rotation_from_6d(x: tf.Tensor) -> tf.Tensor:
    """`[B, 6]` -> `[B, 3, 3]` rotation matrices whose first two rows are the Gram-Schmidt orthonormalisation of
    the two 3-vectors (Zhou et al. 2019, "On the continuity of rotation representations in neural networks")."""
    a, b = x[:, :3], x[:, 3:]
    r1 = tf.math.l2_normalize(a, axis=-1, epsilon=1e-12)
    r2 = tf.math.l2_normalize(b - tf.reduce_sum(r1 * b, -1, keepdims=True) * r1, axis=-1, epsilon=1e-12)
    return tf.stack([r1, r2, tf.linalg.cross(r1, r2)], axis=-2)


class PoseTask(Task):
    name = "pose3d"

    def __init__(self, config: PoseTaskConfig, splits: PoseSplits, log=print):
        self.config = config
        self.splits = splits
        self.skeleton = splits.skeleton
        self.log = log
        self.prior = splits.prior.astype(np.float32)
        self.prior_description = f"{len(self.prior)} unpaired canonical 3D poses (see the data line)"
        if len(splits.train) == 0 or len(self.prior) == 0 or len(splits.test) == 0:
            raise ValueError(f"pose data needs non-empty train, test and prior sets; got {len(splits.train)} "
                             f"train, {len(splits.test)} test, {len(self.prior)} prior poses")
        rng = np.random.default_rng(config.data_seed)
        n_paired = int(round(config.paired_fraction * len(splits.train)))
        self.paired_index = np.sort(rng.permutation(len(splits.train))[:n_paired])
        j = self.skeleton.num_joints
        self.generator = pose_generator(j * 3 + 2, j, config.width, config.blocks, dtype_policy=config.dtype_policy)
        self.discriminator = pose_discriminator(self.skeleton.parents, config.d_width,
                                                dtype_policy=config.dtype_policy)

    # --- data -------------------------------------------------------------------------------------------
    def train_dataset(self, batch_size: int, seed: int, start_step: int) -> tf.data.Dataset:
        """Batch k: ``batch_size`` observations and prior poses drawn with stateless RNGs seeded by (seed, k);
        with paired data, ``batch_size`` more rows from the paired subset, flagged by ``paired``."""
        train = self.splits.train
        obs = self._batch(train)
        prior = tf.constant(self.prior)
        paired_index = tf.constant(self.paired_index, tf.int64)
        n_obs, n_prior, n_paired = len(train), len(self.prior), len(self.paired_index)

        def make(step):
            idx = tf.random.stateless_uniform([batch_size], [seed, step], maxval=n_obs, dtype=tf.int64)
            flags = tf.zeros([batch_size])
            if n_paired:
                pick = tf.random.stateless_uniform([batch_size], [seed + 2, step], maxval=n_paired, dtype=tf.int64)
                idx = tf.concat([idx, tf.gather(paired_index, pick)], 0)
                flags = tf.concat([flags, tf.ones([batch_size])], 0)
            batch = {k: tf.gather(v, idx) for k, v in obs.items()}
            prior_idx = tf.random.stateless_uniform([tf.size(idx)], [seed + 1, step], maxval=n_prior,
                                                    dtype=tf.int64)
            batch.update(prior=tf.gather(prior, prior_idx), paired=flags, step=step)
            return batch

        return step_indexed(make, start_step)

    @staticmethod
    def _batch(arrays: PoseArrays) -> dict[str, tf.Tensor]:
        """Every field of ``arrays`` as a tensor, keyed by its name (the observation and its ground truth)."""
        return {f.name: tf.constant(getattr(arrays, f.name)) for f in dataclasses.fields(arrays)}

    # --- generator and renderer -------------------------------------------------------------------------
    def features(self, batch: Batch) -> tf.Tensor:
        """`[B, J*3 + 2]`: root-relative camera rays of the joints (2D / focal) scaled to metres at the
        nominal depth and zeroed where the confidence is 0, the confidences, and the root's ray."""
        rays = batch["joints_2d"] / batch["focal"][:, None, :]
        conf = batch["confidence"]
        rel = (rays - rays[:, :1]) * conf[..., None] * (self.config.nominal_depth_mm / POSE_SCALE)
        flat = tf.reshape(rel, [tf.shape(rel)[0], -1])
        return tf.concat([flat, conf, rays[:, 0]], -1)

    def generate(self, generator: keras.Model, batch: Batch, training: bool) -> dict[str, tf.Tensor]:
        out = generator(self.features(batch), training=training)
        pose = tf.cast(out["pose"], tf.float32) * POSE_SCALE
        rotation = rotation_from_6d(tf.cast(out["rotation_6d"], tf.float32))
        depth = self.config.nominal_depth_mm * tf.exp(tf.clip_by_value(tf.cast(out["log_depth"], tf.float32),
                                                                        -3.0, 3.0))
        root_ray = batch["joints_2d"][:, 0] / batch["focal"]
        translation = tf.concat([root_ray * depth, depth], -1)
        return {"pose": pose, "rotation": rotation, "translation": translation}

    def render(self, factors, batch):
        return renderers.perspective_render(factors["pose"], factors["rotation"], factors["translation"],
                                            batch["focal"])

    def _image_plane_m(self, points_2d: tf.Tensor, batch: Batch) -> tf.Tensor:
        """Normalised image coordinates -> metres on a plane at the nominal depth (so the loss does not depend
        on the focal length)."""
        return points_2d / batch["focal"][:, None, :] * (self.config.nominal_depth_mm / POSE_SCALE)

    def losses(self, batch, factors):
        rendered = self._image_plane_m(self.render(factors, batch), batch)
        observed = self._image_plane_m(batch["joints_2d"], batch)
        out = {"reconstruction": losses.l1_reconstruction_loss(rendered, observed,
                                                               weights=batch["confidence"][..., None])}
        if self.config.paired_fraction > 0:
            weights = batch["paired"][:, None, None]
            pred_cam = renderers.to_camera_frame(factors["pose"], factors["rotation"])
            true_cam = renderers.to_camera_frame(batch["poses"], batch["rotation"])
            out["supervised"] = 0.5 * (
                losses.supervised_loss(pred_cam / POSE_SCALE, true_cam / POSE_SCALE, weights=weights)
                + losses.supervised_loss(factors["pose"] / POSE_SCALE, batch["poses"] / POSE_SCALE, weights=weights))
        return out

    def discriminator_view(self, factors, batch, real):
        """Canonical skeletons in metres: prior samples (real) or predicted poses."""
        return (factors if real else factors["pose"]) / POSE_SCALE

    # --- metrics and figures ----------------------------------------------------------------------------
    def _errors(self, batch, factors) -> dict[str, tf.Tensor]:
        pred_cam = renderers.to_camera_frame(factors["pose"], factors["rotation"])
        true_cam = renderers.to_camera_frame(batch["poses"], batch["rotation"])
        reproj = tf.norm(self.render(factors, batch) - batch["joints_2d"], axis=-1)  # [B, J] normalised
        conf = batch["confidence"]
        return {"mpjpe_mm": metrics.mpjpe(pred_cam, true_cam), "pa_mpjpe_mm": metrics.pa_mpjpe(pred_cam, true_cam),
                # pixels of a 1000-px-wide image (half-width 500 px = 1 normalised unit)
                "reprojection_px": 500.0 * tf.reduce_sum(reproj * conf, -1) / tf.maximum(tf.reduce_sum(conf, -1),
                                                                                          1e-6)}

    def metrics(self, batch, factors):
        return {k: tf.reduce_mean(v) for k, v in self._errors(batch, factors).items()}

    def _figure(self, joints_2d, confidence, pred_cam, true_cam=None) -> np.ndarray:
        """`[N * PANEL, C * PANEL, 3]` float32, one row per pose: input 2D | predicted 3D (over the true 3D in grey)
        | true 3D, the 3D seen from 60 degrees to the side of the camera so depth shows; without ``true_cam``
        the last column is left out."""
        rows = []
        for i in range(len(joints_2d)):
            truth = None if true_cam is None else drawing.side_view(true_cam[i])
            row = [drawing.skeleton_panel(joints_2d[i], self.skeleton, visible=confidence[i] > 0),
                   drawing.skeleton_panel(drawing.side_view(pred_cam[i]), self.skeleton, reference=truth)]
            if truth is not None:
                row.append(drawing.skeleton_panel(truth, self.skeleton))
            rows.append(np.concatenate(row, axis=1))
        return np.concatenate(rows, axis=0)

    def _batch_figure(self, batch, factors, rows: int) -> np.ndarray:
        cam = lambda p, r: renderers.to_camera_frame(p[:rows], r[:rows]).numpy()  # noqa: E731
        return self._figure(np.asarray(batch["joints_2d"][:rows]), np.asarray(batch["confidence"][:rows]),
                            cam(factors["pose"], factors["rotation"]), cam(batch["poses"], batch["rotation"]))

    def prediction_figure(self, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], rows: int = 8):
        """Figure of ``serve`` outputs for the first ``rows`` inputs: input 2D | predicted 3D."""
        return self._figure(inputs["joints_2d"][:rows], inputs["confidence"][:rows], outputs["pose_3d"][:rows])

    def sample_images(self, batch, factors, rows: int = 4):
        return tf.constant(self._batch_figure(batch, factors, rows)[None])

    def evaluate(self, generator: keras.Model, out_dir: str) -> dict:
        """MPJPE and PA-MPJPE (mm, camera frame, root-aligned / Procrustes-aligned) and the reprojection error
        on the first ``eval_images`` held-out poses; writes a PNG of a few of them."""
        test = self.splits.test
        n = min(self.config.eval_images, len(test))
        errors: dict[str, list[np.ndarray]] = {}
        for i in range(0, n, 500):
            batch = self._batch(test.subset(slice(i, min(n, i + 500))))
            for k, v in self._errors(batch, self.generate(generator, batch, training=False)).items():
                errors.setdefault(k, []).append(v.numpy())
        per_pose = {k: np.concatenate(v) for k, v in errors.items()}  # name -> [n] error of each pose
        ci = metrics.bootstrap_mean_interval(np.stack(list(per_pose.values()), axis=1))  # [3, 2] over poses
        result = {"task": self.name, "eval_poses": int(n), "data": self.splits.description,
                  "prior": self.prior_description, "paired_fraction": self.config.paired_fraction,
                  **{k: float(np.mean(v)) for k, v in per_pose.items()},
                  **{f"{k}_ci95": [float(lo), float(hi)] for k, (lo, hi) in zip(per_pose, ci, strict=True)},
                  "ci95_method": f"percentile bootstrap of the mean over the held-out poses "
                                 f"({metrics.BOOTSTRAP_RESAMPLES} resamples, seed {metrics.BOOTSTRAP_SEED})"}
        os.makedirs(out_dir, exist_ok=True)
        first = self._batch(test.subset(slice(0, 6)))
        path = os.path.join(out_dir, "eval_samples.png")
        formats.write_image(path, self._batch_figure(first, self.generate(generator, first, training=False), 6))
        result["samples_png"] = path
        return result

    def format_eval(self, result: dict) -> str:
        """The evaluation table: each mean error with its 95 % bootstrap interval over the held-out poses."""
        ci = lambda key, digits: "[{:.{d}f}, {:.{d}f}]".format(*result[f"{key}_ci95"], d=digits)  # noqa: E731
        return "\n".join([
            f"evaluation: task={self.name} on {result['eval_poses']} held-out poses ({result['data']})",
            f"  MPJPE (root-aligned, camera frame): {result['mpjpe_mm']:.1f} mm, 95% CI {ci('mpjpe_mm', 1)}",
            f"  PA-MPJPE (Procrustes-aligned):       {result['pa_mpjpe_mm']:.1f} mm, 95% CI {ci('pa_mpjpe_mm', 1)}",
            f"  reprojection error:                  {result['reprojection_px']:.2f} px, 95% CI "
            f"{ci('reprojection_px', 2)} (1000-px-wide image)"])

    # --- serving ----------------------------------------------------------------------------------------
    def serving_signature(self):
        """``serving_default``: 2D joints only (every joint confident, the nominal focal length)."""
        return {"joints_2d": tf.TensorSpec([None, self.skeleton.num_joints, 2], tf.float32, name="joints_2d")}

    def serve(self, generator, joints_2d):
        joints_2d = tf.convert_to_tensor(joints_2d, tf.float32)
        shape = tf.shape(joints_2d)
        return self.serve_with_camera(generator, joints_2d, tf.ones(shape[:2]),
                                      tf.fill([shape[0], 2], tf.constant(self.config.nominal_focal, tf.float32)))

    def serve_with_camera(self, generator, joints_2d, confidence, focal):
        """The ``with_camera`` signature: 2D joints with per-joint confidences and focal lengths ->
        ``pose_3d`` `[B, J, 3]` (camera frame, root-relative, mm), ``pose_canonical`` `[B, J, 3]`,
        ``rotation`` `[B, 3, 3]`, ``translation`` `[B, 3]` (mm)."""
        factors = self.generate(generator, {"joints_2d": joints_2d, "confidence": confidence, "focal": focal},
                                training=False)
        return {"pose_3d": renderers.to_camera_frame(factors["pose"], factors["rotation"]),
                "pose_canonical": factors["pose"], "rotation": factors["rotation"],
                "translation": factors["translation"]}

    def extra_serving_signatures(self):
        j = self.skeleton.num_joints
        return {"with_camera": (self.serve_with_camera, {
            "joints_2d": tf.TensorSpec([None, j, 2], tf.float32, name="joints_2d"),
            "confidence": tf.TensorSpec([None, j], tf.float32, name="confidence"),
            "focal": tf.TensorSpec([None, 2], tf.float32, name="focal")})}

    def export_metadata(self):
        return {"task": self.name, "skeleton": self.skeleton.name, "joint_names": list(self.skeleton.joint_names),
                "parents": list(self.skeleton.parents), "units": "mm", "image_coordinates":
                "normalised: principal point at 0, image half-width = 1; focal in the same unit",
                "nominal_focal": self.config.nominal_focal,
                "prior": self.prior_description}


def load_pose_splits(data_dir: str | None, prior_dir: str | None, cache_dir: str, data_seed: int, num_train: int,
                     num_test: int, num_prior: int, log=print) -> PoseSplits:
    """Built-in procedural skeletons (``data_dir`` unset or ``"builtin"``) or Human3.6M's preprocessed
    ``data_3d_h36m.npz`` in ``data_dir``; with ``prior_dir``, the prior collection is the BVH motion capture
    found there instead (mapped to the same skeleton)."""
    if data_dir in (None, "", "builtin"):
        from aign_tf.data import synthetic_poses

        splits = synthetic_poses.load_or_generate(num_train, num_test, num_prior, data_seed, cache_dir, log=log)
    else:
        from aign_tf.data import h36m

        splits = h36m.load_h36m(data_dir, data_seed, num_prior=num_prior, log=log)
    if prior_dir:
        from aign_tf.data import bvh

        prior, skipped = bvh.load_bvh_prior(prior_dir, log=log)
        splits = dataclasses.replace(
            splits, prior=prior, description=f"{splits.description}; prior: BVH motion capture from {prior_dir}",
            skipped={**splits.skipped, **{f"BVH {reason}": n for reason, n in skipped.items()}})
    return splits
