"""What users look at while and after training: the visdom dashboard, HTML pages, loss plots and loggers.

- ``visualizer``: the training visualiser (visdom + ``checkpoints/<name>/web/`` + ``loss_log.txt``);
- ``loss_log``: parsing ``loss_log.txt`` and drawing the loss-curve PNG;
- ``html``: the static page builder used by both pages;
- ``results_page``: the test results page (one row per image, metrics, PSNR ordering);
- ``loggers``: optional TensorBoard and Weights & Biases loggers (``--use_tensorboard``, ``--use_wandb``);
- ``visdom_client``: a fault-tolerant visdom connection; ``images``: image grids;
- ``visdom_server``: an offline visdom server launcher;
- ``visdom_assets``: visdom's front-end assets from the npm registry (``python -m scripts.visdom_assets``).
"""
