"""The files of one scene run, written atomically: the output, the one-band files beside it (the
model's maps, the cloud weight of ``--keep_clear``) and the STAC item, all tagged with the model
and the inputs (:func:`write_scene`).

Every file is written under a temporary name; the files beside the output and the STAC item are in
place before the output is renamed, so an output that exists is complete with its files.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from models.roles import Roles
from scene.files import SceneResult, map_content
from scene.io import Scene
from scene.keep_clear import Compositor
from scene.output import OutputFormat, atomic_geotiff
from scene.paths import MASK_NAME, map_path, sidecar_names
from scene.pipeline import Forward, predict_scene
from scene.stac_item import input_tags, write_item
from scene.windows import WindowGrid


@dataclass(frozen=True)
class RunRecord:
    """What the files of a run say about the model: its name, output bands, roles (what its maps
    are), tags (experiment and epoch, or the weight file; its input domain) and weight files."""

    model: str
    bands: int
    roles: Roles
    tags: dict[str, str]
    weights: tuple[Path, ...]

    def content(self, name: str) -> str:
        """The ``content`` tag of the one-band file ``name``."""
        if name == MASK_NAME:
            return f"{name}: weight in [0, 1] of the model's pixels (1: cloud or shadow, 0: the input kept)"
        return map_content(name, self.roles, self.model)


def write_scene(
    scene: Scene,
    out: str | os.PathLike,
    grid: WindowGrid,
    fmt: OutputFormat,
    forward: Forward,
    device: torch.device,
    record: RunRecord,
    *,
    batch_size: int = 8,
    num_threads: int | None = None,
    write_thread: bool | None = None,
    progress: bool = True,
    maps: tuple[str, ...] = (),
    compositor: Compositor | None = None,
) -> SceneResult:
    """Predict an open ``scene`` over ``grid`` into ``out`` on ``device``, settings already checked.

    ``forward`` returns the output's ``record.bands`` bands followed by one channel per name of
    ``maps`` (and the compositing weight last, with ``compositor``: :mod:`scene.keep_clear`).
    """
    start = time.perf_counter()
    keep = None
    if compositor is not None and compositor.keep:
        keep = f"{compositor.detector} detector, feather {compositor.feather} px"
    tags = {**record.tags, **input_tags(scene, keep)}
    sidecars = {name: map_path(out, name) for name in sidecar_names(maps, compositor is not None)}
    map_fmt = OutputFormat("float32", fmt.fill, fmt.compress, fmt.cog)
    cog = fmt.cog_options() if fmt.cog else None
    with contextlib.ExitStack() as stack:
        dst = stack.enter_context(
            atomic_geotiff(out, fmt.profile(scene.grid, record.bands, grid.stride), cog)
        )
        fmt.describe(dst, scene.band_names, **tags)
        writers = []
        for name, path in sidecars.items():
            writer = stack.enter_context(
                atomic_geotiff(path, map_fmt.profile(scene.grid, 1, grid.stride), cog)
            )
            writer.set_band_description(1, name)
            writer.update_tags(content=record.content(name), **tags)
            writers.append(writer)
        reader = scene.batch_reader(grid, batch_size, pin=device.type == "cuda")
        try:
            ran = predict_scene(
                reader,
                forward,
                record.bands,
                dst,
                device,
                batch_size,
                fmt,
                scene.scaling,
                progress,
                num_threads,
                write_thread,
                writers,
                compositor,
            )
        finally:
            reader.close()
        item = write_item(
            Path(out), scene, weights=list(record.weights), sidecars=sidecars, cog=fmt.cog, tags=tags
        )
    seconds = time.perf_counter() - start
    size = (grid.width, grid.height, record.bands, fmt.dtype, ran, len(grid), seconds)
    return SceneResult(Path(out), *size, tuple(sidecars.values()), item)
