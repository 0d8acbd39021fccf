"""Small NumPy drawings for figures (no plotting library needed): skeletons as coloured stick figures."""

from __future__ import annotations

import numpy as np

PANEL = 128  # side of one skeleton panel, pixels
_LEFT, _RIGHT, _CENTRE = (0.2, 0.45, 0.95), (0.9, 0.25, 0.2), (0.2, 0.7, 0.3)
_REFERENCE = (0.72, 0.72, 0.72)


def side_view(points: np.ndarray, degrees: float = 60.0) -> np.ndarray:
    """`[J, 3]` camera-frame joints (x right, y down, z forward) -> `[J, 2]` orthographic view from a camera
    turned ``degrees`` about the vertical axis round the root, root at the origin, same unit."""
    p = np.asarray(points, np.float64) - np.asarray(points, np.float64)[:1]
    a = np.deg2rad(degrees)
    return np.stack([np.cos(a) * p[:, 0] - np.sin(a) * p[:, 2], p[:, 1]], -1)


def _line(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, colour, width: int = 1) -> None:
    steps = int(np.ceil(np.abs(b - a).max())) * 2 + 2
    t = np.linspace(0.0, 1.0, steps)[:, None]
    pts = np.round(a + t * (b - a)).astype(int)
    for dy in range(-width + 1, width):
        for dx in range(-width + 1, width):
            r, c = pts[:, 1] + dy, pts[:, 0] + dx
            ok = (r >= 0) & (r < canvas.shape[0]) & (c >= 0) & (c < canvas.shape[1])
            canvas[r[ok], c[ok]] = colour


def skeleton_panel(points: np.ndarray, skeleton, visible: np.ndarray | None = None,
                   reference: np.ndarray | None = None, extent: float | None = None) -> np.ndarray:
    """One `[PANEL, PANEL, 3]` float32 image of a stick figure.

    points: `[J, 2]` (x right, y down) in any unit; reference: optional `[J, 2]` drawn underneath in grey
    (e.g. the ground truth); extent: the width of the shown square in the points' unit, centred on joint 0
    (None: fit the points and the reference with a margin). Joints with ``visible`` False are not drawn.
    Left limbs blue, right red, the trunk green.
    """
    points = np.asarray(points, np.float64)
    canvas = np.ones((PANEL, PANEL, 3), np.float32)
    visible = np.ones(len(points), bool) if visible is None else np.asarray(visible, bool)
    both = points[visible] if reference is None else np.concatenate([points[visible], reference])
    if extent is None:
        centre = (both.min(0) + both.max(0)) / 2 if len(both) else np.zeros(2)
        extent = max(float(np.ptp(both, axis=0).max()) * 1.15, 1e-6) if len(both) else 1.0
    else:
        centre = points[0]
    to_px = lambda p: (np.asarray(p) - centre) / extent * PANEL + PANEL / 2  # noqa: E731
    left, right = set(skeleton.left), set(skeleton.right)
    if reference is not None:
        ref = to_px(reference)
        for parent, child in skeleton.bones:
            _line(canvas, ref[parent], ref[child], _REFERENCE, width=2)
    px = to_px(points)
    for parent, child in skeleton.bones:
        if visible[parent] and visible[child]:
            colour = _LEFT if child in left else _RIGHT if child in right else _CENTRE
            _line(canvas, px[parent], px[child], colour, width=2)
    for j in np.flatnonzero(visible):
        _line(canvas, px[j], px[j], (0.1, 0.1, 0.1), width=2)
    return canvas
