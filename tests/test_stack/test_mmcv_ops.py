"""mmcv's compiled ops (built from the sdist with MMCV_WITH_OPS=1) load and compute correctly on
CPU.

Where the ``mmcv`` distribution is installed (the main lane), its ops must load: an import error
fails here. Only ``mmcv-lite`` (mmcv without ops, the compat lane) skips.
"""
from importlib.metadata import PackageNotFoundError, version

import pytest
import torch

try:
    version('mmcv')
except PackageNotFoundError:
    pytest.skip(
        "mmcv's compiled ops are not installed: this environment has mmcv-lite (mmcv "
        'without ops, the compat lane) or no mmcv',
        allow_module_level=True)

from mmcv import ops  # noqa: E402


def _boxes_and_scores():
    # IoU(D, A) = 50 / 100 = 0.5; IoU(B, A) = 81 / 119 = 0.68; IoU(B, D) = 36 / 114 = 0.32;
    # C overlaps nothing. Score order: D, A, B, C.
    boxes = torch.tensor([
        [0., 0., 10., 10.],  # A
        [1., 1., 11., 11.],  # B
        [20., 20., 30., 30.],  # C
        [0., 0., 10., 5.]
    ])  # D
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    return boxes, scores


@pytest.mark.parametrize(
    'iou_threshold, expected_keep',
    [
        (0.6, [3, 0, 2]),  # A survives D (0.5 < 0.6) and suppresses B (0.68)
        (0.4, [3, 1, 2]),  # D suppresses A (0.5 >= 0.4); B survives because A is gone
        (0.3, [3, 2]),  # D also suppresses B (0.32)
    ])
def test_nms_cpu_greedy_suppression(iou_threshold, expected_keep):
    boxes, scores = _boxes_and_scores()
    dets, keep = ops.nms(boxes, scores, iou_threshold=iou_threshold)
    assert keep.tolist() == expected_keep
    assert dets.shape == (len(expected_keep), 5)
    torch.testing.assert_close(dets[:, :4], boxes[expected_keep])
    torch.testing.assert_close(dets[:, 4], scores[expected_keep])


def _bilinear(feat, y, x):
    """Bilinear sample of feat (C, H, W) at a continuous index position, mmcv's border rules."""
    _, height, width = feat.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return feat.new_zeros(feat.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * feat[:, y0, x0] + (1 - ly) * lx * feat[:, y0, x1] + ly *
            (1 - lx) * feat[:, y1, x0] + ly * lx * feat[:, y1, x1])


def _roi_align_reference(feat, roi, out_size, scale, ratio):
    """Average RoIAlign with aligned=True for one roi (x1, y1, x2, y2) on feat (C, H, W)."""
    x1, y1, x2, y2 = (float(v) * scale - 0.5 for v in roi)
    bin_h, bin_w = (y2 - y1) / out_size[0], (x2 - x1) / out_size[1]
    out = feat.new_zeros(feat.shape[0], *out_size)
    for i in range(out_size[0]):
        for j in range(out_size[1]):
            samples = [
                _bilinear(feat, y1 + i * bin_h + (iy + 0.5) * bin_h / ratio,
                          x1 + j * bin_w + (ix + 0.5) * bin_w / ratio) for iy in range(ratio)
                for ix in range(ratio)
            ]
            out[:, i, j] = torch.stack(samples).mean(0)
    return out


def test_roi_align_linear_feature_is_exact():
    """On a feature linear in (y, x), each output bin equals the feature at the bin centre."""
    height = width = 8
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing='ij')
    feat = torch.stack([2 * xs + 3 * ys + 1, -xs + 0.5 * ys])[None]  # (1, 2, 8, 8)
    rois = torch.tensor([[0., 2., 2., 6., 5.]])  # batch index, x1, y1, x2, y2
    roi_align = ops.RoIAlign(
        output_size=(2, 2), spatial_scale=1.0, sampling_ratio=2, pool_mode='avg', aligned=True)
    out = roi_align(feat, rois)
    # aligned=True shifts by half a pixel: x in [1.5, 5.5] -> bin centres 2.5, 4.5;
    # y in [1.5, 4.5] -> bin centres 2.25, 3.75.
    cy = torch.tensor([2.25, 3.75])[:, None]
    cx = torch.tensor([2.5, 4.5])[None, :]
    expected = torch.stack([2 * cx + 3 * cy + 1, -cx + 0.5 * cy])[None]
    torch.testing.assert_close(out, expected)


def test_roi_align_random_feature_matches_reference_and_backward():
    feat = torch.randn(2, 3, 9, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [
            [0., 0.5, 1.0, 5.5, 7.0],
            [1., 3.0, 0.0, 12.0, 10.0],  # partly outside the map (scale 0.5)
            [1., 2.0, 2.0, 2.5, 9.0]
        ],
        dtype=torch.float64)
    scale, ratio, out_size = 0.5, 2, (3, 2)
    roi_align = ops.RoIAlign(out_size, spatial_scale=scale, sampling_ratio=ratio, aligned=True)
    out = roi_align(feat, rois)
    assert out.shape == (3, 3, *out_size)
    expected = torch.stack([
        _roi_align_reference(feat[int(r[0])].detach(), r[1:], out_size, scale, ratio) for r in rois
    ])
    torch.testing.assert_close(out.detach(), expected)
    # The compiled backward is the transpose of the forward: check it against autograd of the
    # reference on a random cotangent.
    cotangent = torch.randn_like(out)
    (grad, ) = torch.autograd.grad((out * cotangent).sum(), feat)
    ref_out = torch.stack(
        [_roi_align_reference(feat[int(r[0])], r[1:], out_size, scale, ratio) for r in rois])
    (ref_grad, ) = torch.autograd.grad((ref_out * cotangent).sum(), feat)
    torch.testing.assert_close(grad, ref_grad)
