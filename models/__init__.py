"""Models: ``--model X`` finds ``models/X_model.py`` and its ``XModel`` class (a ``BaseModel``).

To add a model, copy ``template_model.py`` (itself a working ``--model template``) to
``<name>_model.py``; nothing else needs editing.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from util.registry import discover, find_class

from .base_model import BaseModel
from .networks.init import skipped_init

MODEL_NAMES = discover(Path(__file__).parent, "model")


def find_model_using_name(name: str) -> type[BaseModel]:
    """The ``BaseModel`` subclass defined in ``models/<name>_model.py``."""
    return find_class("models", name, "model", BaseModel, "--model", MODEL_NAMES)


def get_option_setter(name: str):
    return find_model_using_name(name).modify_commandline_options


def create_model(opt: Namespace, *, weights_follow: bool = False) -> BaseModel:
    """Instantiate the model named by ``opt.model``.

    ``weights_follow``: every network's weights are loaded right after (``setup`` in test mode),
    so the random initialisation is skipped (:func:`models.networks.init.skipped_init`), unless
    the model draws random numbers when it runs (``infer_draws_random_numbers``: dropout in train
    mode, without ``opt.eval``). Those draws follow the initialisation's, so such a model is built
    again, initialised, and its outputs stay what they were.
    """
    if weights_follow and opt.is_train:
        raise ValueError("weights_follow: only a test-mode model loads all its weights in setup()")
    model_class = find_model_using_name(opt.model)
    model = None
    if weights_follow:
        with skipped_init():
            model = model_class(opt)
        if not getattr(opt, "eval", False) and model.infer_draws_random_numbers():
            model = None  # freed before the second build
    if model is None:
        model = model_class(opt)
    print(f"model [{type(model).__name__}] was created")
    return model
