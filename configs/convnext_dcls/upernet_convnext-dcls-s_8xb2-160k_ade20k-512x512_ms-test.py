# Multi-scale (ratios 0.5-1.75 of 2048x512) + flip test of the single-scale config, as the
# release's *_ms.py: test only (tools/test.py); train with the single-scale config.
_base_ = './upernet_convnext-dcls-s_8xb2-160k_ade20k-512x512.py'

model = dict(_delete_=True, type='SegTTAModel', module={{_base_.model}})
test_dataloader = dict(dataset=dict(pipeline={{_base_.tta_pipeline}}))
