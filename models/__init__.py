"""Models: ``--model X`` finds ``models/X_model.py`` and its ``XModel`` class (a ``BaseModel``).

To add a model, copy ``template_model.py`` (itself a working ``--model template``) to
``<name>_model.py``; nothing else needs editing.
"""

from __future__ import annotations

import importlib
import pkgutil
from argparse import Namespace
from pathlib import Path

from util.errors import UserError

from .base_model import BaseModel


def _discover() -> tuple[str, ...]:
    here = Path(__file__).parent
    names = (m.name[: -len("_model")] for m in pkgutil.iter_modules([str(here)]) if m.name.endswith("_model"))
    return tuple(sorted(n for n in names if n != "base"))


MODEL_NAMES = _discover()


def find_model_using_name(name: str) -> type[BaseModel]:
    """The ``BaseModel`` subclass defined in ``models/<name>_model.py``."""
    if name not in MODEL_NAMES:
        raise UserError(f"unknown --model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    module = importlib.import_module(f"models.{name}_model")
    target = name.replace("_", "") + "model"
    for attr, cls in vars(module).items():
        if attr.lower() == target and isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls
    raise UserError(f"models/{name}_model.py defines no BaseModel subclass named like {target!r}")


def get_option_setter(name: str):
    return find_model_using_name(name).modify_commandline_options


def create_model(opt: Namespace) -> BaseModel:
    """Instantiate the model named by ``opt.model``."""
    model = find_model_using_name(opt.model)(opt)
    print(f"model [{type(model).__name__}] was created")
    return model
