"""tools/train.py + tools/test.py on both toolkits: a few iterations of the demo configs on the
tiny datasets, then evaluation from the saved checkpoint (metrics printed, --out written)."""
import pickle

from conftest import DET_CONFIG, SEG_CONFIG, det_data_options, run_tool, seg_data_options


def test_detection_train_then_test(tiny_data, tmp_path):
    work = tmp_path / 'det'
    run_tool(['tools/train.py', DET_CONFIG, '--work-dir', work, '--cfg-options',
              *det_data_options(tiny_data), 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
              'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1'])
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    out = tmp_path / 'preds.pkl'
    proc = run_tool(['tools/test.py', DET_CONFIG, ckpt, '--work-dir', work, '--out', out,
                     '--show-dir', 'vis', '--cfg-options', *det_data_options(tiny_data)])
    assert 'coco/bbox_mAP:' in proc.stdout and 'coco/segm_mAP:' in proc.stdout
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 4 and 'pred_instances' in preds[0]
    assert len(list(work.glob('*/vis/*.jpg'))) == 4  # --show-dir: painted predictions


def test_segmentation_train_then_test(tiny_data, tmp_path):
    work = tmp_path / 'seg'
    run_tool(['tools/train.py', SEG_CONFIG, '--work-dir', work, '--cfg-options',
              *seg_data_options(tiny_data), 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
              'default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=1'])
    ckpt = work / 'iter_4.pth'
    assert ckpt.is_file()
    out = tmp_path / 'pred_maps'
    proc = run_tool(['tools/test.py', SEG_CONFIG, ckpt, '--work-dir', work, '--out', out,
                     '--show-dir', 'vis', '--cfg-options', *seg_data_options(tiny_data)])
    assert 'mIoU:' in proc.stdout
    assert len(list(out.glob('*.png'))) == 4
    assert len(list(work.glob('vis/vis_data/vis_image/*.png'))) == 4  # --show-dir
