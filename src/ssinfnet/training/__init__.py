"""Training: coach-guided self-supervised pretraining, single and multi stages, one resumable loop.

Entry points: :func:`ssinfnet.training.pretrain.pretrain`, :func:`ssinfnet.training.supervised.train_single`,
:func:`ssinfnet.training.supervised.train_multi`; configs from :func:`ssinfnet.training.config.load_config`.
"""
