"""Utilities: device selection, image conversion, image pool, checkpoints, HTML and visdom display."""
