"""Utilities: device selection, image conversion, image pool, atomic files, random states, HTML and visdom display."""
