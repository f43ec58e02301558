"""The public face of whole-scene inference: :class:`ScenePredictor` and :func:`predict_scene_file`.

    from scene import ScenePredictor
    predictor = ScenePredictor("checkpoints", "s12_13band", gpu_ids="0")
    result = predictor.predict("S2.tif", "S1.tif", "clear.tif", out_dtype="uint16", maps=True)
    print(result.megapixels_per_second, result.maps)  # maps: clear_att_A.tif beside clear.tif
    glf = ScenePredictor(weights="CR_net.pth")  # a published weight file (docs/weights.md)

Every setting is checked before any work starts, and every mistake raises a one-line
:class:`util.errors.UserError` (named after ``predict.py``'s options). An existing output (or
a file beside it: maps, cloud weight, STAC item) is refused unless ``overwrite=True``; the output
is written under a temporary name and renamed at the end, so an existing file is only replaced by
a complete one.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import models
from models.roles import Roles
from scene import domain as by_domain
from scene.files import SceneResult, gdal_env, map_content, stderr_log
from scene.io import Scene, check_scene, open_products
from scene.keep_clear import DEFAULT_FEATHER, Compositor
from scene.model import (
    described,
    input_domain,
    load_model,
    model_forward,
    model_source,
    png_warning,
    window_multiple,
)
from scene.output import OutputFormat
from scene.paths import check_output_path, check_overwrite, make_parent, map_path, sidecar_names
from scene.pipeline import Forward
from scene.products import ReadOptions
from scene.windows import WindowGrid
from scene.writing import RunRecord, write_scene
from util.errors import UserError

__all__ = [
    "SceneResult",
    "ScenePredictor",
    "gdal_env",
    "map_content",
    "map_path",
    "predict_scene_file",
    "stderr_log",
]


class ScenePredictor:
    """A trained experiment or a weight file, ready to remove clouds from whole Sentinel-2 scenes
    window by window.

    The options are read at once (``<checkpoints_dir>/<name>/train_opt.json``); the model is built
    and its weights (``epoch``: 'latest' or a number) loaded on first use, on the device of
    ``gpu_ids`` ('auto': the first GPU if any; '-1': the CPU). A folder of weight files without
    ``train_opt.json`` is read with the paper's configuration of ``model`` (see
    :func:`scene.model.load_options`); ``model`` also refuses an experiment of another model.
    ``weights``: a published weight file or a published set's name instead of an experiment
    (:mod:`models.weight_sets`; ``download``: fetch a published set not downloaded yet); a folder
    given as ``weights`` is an experiment (or a folder of weight files alone).
    :attr:`domain` is what the model expects at its input; scenes are scaled by it.
    """

    def __init__(
        self,
        checkpoints_dir: str | os.PathLike | None = None,
        name: str | None = None,
        epoch: str | int = "latest",
        *,
        gpu_ids: str = "auto",
        model: str | None = None,
        weights: str | os.PathLike | None = None,
        download: bool = False,
    ) -> None:
        self.opt, self.weight_set, self.checkpoints_dir, self.name = model_source(
            checkpoints_dir, name, epoch, model=model, weights=weights, download=download
        )
        self.epoch, self.gpu_ids = epoch, gpu_ids
        self.domain = input_domain(self.opt, self.weight_set)
        self.described = described(self.opt, self.weight_set, self.checkpoints_dir / self.name)
        self._model: models.BaseModel | None = None
        self._forward: Forward | None = None
        self._said: set[str] = set()  # notes logged once per predictor, not once per scene

    # ------------------------------------------------------------------ the model
    @property
    def warning(self) -> str | None:
        """Why this experiment's predictions may be off (trained on 8-bit PNGs that no mapping fits), or None."""
        return png_warning(self.opt, self.name, self.domain)

    @property
    def notes(self) -> tuple[str, ...]:
        """How a Sentinel scene (VV, VH) is given to the model where it is not plain Sentinel
        scaling (the PNG mapping of a model of 8-bit PNGs)."""
        line = by_domain.mapping_line(self.domain, self.described)
        return (line,) if line else ()

    def mapping_for(self, sar_count: int | None) -> str:
        """How a scene whose SAR image has ``sar_count`` bands is given to the model ('unit', 'png8')."""
        return by_domain.mapping_for(self.domain, self.opt, sar_count)

    def band_counts(self, mapping: str = by_domain.UNIT) -> tuple[int, int]:
        """Bands read from the cloudy and the SAR image under ``mapping`` (SAR 0: none)."""
        return by_domain.band_counts(self.domain, self.opt, mapping)

    @property
    def bands(self) -> int:
        """Bands of the output."""
        return int(self.opt.output_nc)

    @property
    def window_multiple(self) -> int:
        """Window sides must be multiples of this (2**depth of the U-Net)."""
        return window_multiple(self.opt)

    @property
    def model(self) -> models.BaseModel:
        """The model in test mode with its weights loaded (built on first use)."""
        if self._model is None:
            self._model = load_model(self.opt, self.checkpoints_dir, self.epoch, self.gpu_ids)
        return self._model

    @property
    def forward(self) -> Forward:
        """The model's forward function: ``(cloudy, sar)`` (B, C, w, w) in [0, 1] on :attr:`model`'s
        device -> cloud-free reflectance (B, bands, w, w) in [0, 1]; the bare network of a scene run."""
        if self._forward is None:
            self._forward = model_forward(self.model)
        return self._forward

    @property
    def roles(self) -> Roles:
        """The roles of the saved model (read from its options; the model is not built)."""
        return models.find_model_using_name(self.opt.model).roles_for(self.opt)

    @property
    def map_names(self) -> tuple[str, ...]:
        """The model's maps that a run can write beside the output: attention maps and cloud masks
        in [0, 1], then predicted variances (``roles.uncertainty``)."""
        return self.roles.maps

    def forward_with(self, maps: tuple[str, ...], mapping: str = by_domain.UNIT) -> Forward:
        """:attr:`forward` followed by one channel per map of ``maps``; ``mapping`` 'png8': with the
        PNG conversion's mapping around it (:func:`scene.domain.png8_forward`)."""
        run = model_forward(self.model, maps) if maps else self.forward
        if mapping != by_domain.PNG8:
            return run
        variances = tuple(name in self.roles.uncertainty for name in maps)
        return by_domain.png8_forward(run, self.domain, self.bands, variances)

    def chosen_maps(self, maps: bool) -> tuple[str, ...]:
        if not maps:
            return ()
        if not self.map_names:
            raise UserError(
                f"model {self.opt.model} has no attention map, cloud mask or uncertainty; drop --maps"
            )
        return self.map_names

    # ------------------------------------------------------------------ scenes
    def check_settings(
        self,
        *,
        window: int,
        overlap: int,
        batch_size: int,
        num_threads: int | None = None,
        arguments: bool = False,
    ) -> None:
        """Refuse settings that do not fit (each with a one-line error naming the option, or with
        ``arguments`` the Python argument, e.g. ``window=48``)."""

        def name(option: str, value: object) -> str:
            return f"{option}={value!r}" if arguments else f"--{option} {value}"

        for option, value in (("window", window), ("batch_size", batch_size)):
            if value < 1:
                raise UserError(f"{name(option, value)}: expected a positive integer")
        if num_threads is not None and num_threads < 0:
            raise UserError(f"{name('num_threads', num_threads)}: expected 0 or more")
        if not 0 <= overlap < window:
            raise UserError(
                f"{name('overlap', overlap)} must be at least 0 and less than {name('window', window)}"
            )
        side = self.window_multiple
        if window % side:
            model = (
                f"the model's netG {self.opt.netG}" if arguments else f"--netG {self.opt.netG} of the model"
            )
            raise UserError(
                f"{name('window', window)} does not fit {model}: the side must be a "
                f"multiple of {side}, e.g. {max(side, window // side * side)}"
            )

    def open(
        self,
        cloudy: str | os.PathLike,
        sar: str | os.PathLike | None,
        *,
        s2_bands: str | None = None,
        cloudy_nodata: str | float | None = None,
        sar_nodata: str | float | None = None,
        read: ReadOptions | None = None,
    ) -> Scene:
        """Open and check a scene for this model (``s2_bands`` default: the training's; ``sar``
        None for a model without SAR input; ``read``: how the products are read, see
        :class:`scene.products.ReadOptions`)."""
        by_domain.check_sar_given(self.domain, self.described, sar)
        read = read or ReadOptions()
        optical, radar = open_products(cloudy, sar, read)
        mapping = self.mapping_for(None if radar is None else len(radar.bands))
        optical_nc, sar_nc = self.band_counts(mapping)
        scene = check_scene(
            optical,
            radar,
            input_nc=optical_nc,
            sar_nc=sar_nc,
            s2_bands=s2_bands or by_domain.default_bands(self.domain, self.opt, mapping),
            cloudy_nodata=cloudy_nodata,
            sar_nodata=sar_nodata,
            sar_scaling=self.domain.sar_scaling,
            s2_dn_offset=self.domain.s2_dn_offset,
            read=read,
            what=self.described,
        )
        scene.mapping = mapping
        return scene

    def predict(
        self,
        cloudy: str | os.PathLike,
        sar: str | os.PathLike | None,
        out: str | os.PathLike,
        *,
        window: int = 256,
        overlap: int = 64,
        batch_size: int = 8,
        out_dtype: str = "float32",
        nodata: str | float | None = None,
        compress: str = "none",
        s2_bands: str | None = None,
        cloudy_nodata: str | float | None = None,
        sar_nodata: str | float | None = None,
        num_threads: int | None = None,
        write_thread: bool | None = None,
        forward: Forward | None = None,
        progress: bool = True,
        maps: bool = False,
        cog: bool = False,
        read: ReadOptions | None = None,
        keep_clear: bool = False,
        cloud_mask: bool = False,
        cloud_detector: str = "auto",
        feather: int = DEFAULT_FEATHER,
        overwrite: bool = False,
        log: Callable[[str], None] | None = stderr_log,
    ) -> SceneResult:
        """Remove the clouds of ``cloudy`` (Sentinel-2) with ``sar`` (Sentinel-1; None for a model
        without SAR input) into the GeoTIFF ``out``, windows of side ``window`` overlapping by
        ``overlap`` pixels, ``batch_size`` at a time.

        ``out_dtype``: 'float32' (reflectance in [0, 1]; ``nodata`` default NaN) or 'uint16'
        (reflectance x 10000; ``nodata`` 0 by default, else above 10000); ``compress``: 'none',
        'zstd', 'deflate' or 'lzw'. ``s2_bands`` picks bands of a 13-band scene (default: the
        training's); ``*_nodata`` override the inputs' nodata values. ``num_threads``: reading
        threads (default: up to 6 beside a GPU, 0 on the CPU); ``write_thread``: write in a thread
        of its own (default: when there are reading threads). ``forward``: a function run instead
        of :attr:`forward` (same contract; e.g. to time the pipeline around a stand-in network).
        ``maps``: also write the model's attention maps / cloud masks (in [0, 1]) and predicted
        variances (reflectance^2, averaged over the bands) as float32 (:func:`map_path`); ``cog``:
        cloud-optimised GeoTIFFs. ``cloudy``/``sar`` may be any product :mod:`scene.products` reads
        (stacked GeoTIFF, SAFE, STAC item); ``read``: how (offsets, resampling, SAR units, the B10
        fill). ``keep_clear``: keep the input's pixels where ``cloud_detector`` finds clear ground,
        feathered over ``feather`` px (:mod:`scene.keep_clear`); ``keep_clear`` or ``cloud_mask``:
        write the weight as ``<out stem>_clouds.tif``. A STAC item (``<out stem>.stac.json``) is
        written beside the output. ``overwrite``: replace existing files of the run (without it
        they are refused). ``log`` receives notes (e.g. the SAR resampled onto the optical grid)
        and one warning per way the inputs differ from the model's input domain.
        """
        inputs = (("cloudy", cloudy),) + ((("sar", sar),) if sar is not None else ())
        out = check_output_path(out, *inputs)
        fmt = OutputFormat.parse(out_dtype, nodata, compress, cog)
        names = self.chosen_maps(maps)
        if names and forward is not None:
            raise UserError("maps cannot be written with a stand-in forward function")
        self.check_settings(window=window, overlap=overlap, batch_size=batch_size, num_threads=num_threads)
        if keep_clear and self.opt.output_nc != self.opt.input_nc:
            raise UserError(
                f"--keep_clear needs the output bands to be the input's; {self.described} takes "
                f"{self.opt.input_nc} and gives {self.opt.output_nc}"
            )
        check_overwrite(out, sidecar_names(names, keep_clear or cloud_mask), overwrite)
        with gdal_env():
            scene = self.open(
                cloudy, sar, s2_bands=s2_bands, cloudy_nodata=cloudy_nodata, sar_nodata=sar_nodata, read=read
            )
            with scene:  # input errors come before the model is built
                if log is not None:
                    self.log_scene(scene, log)
                run = forward or self.forward_with(names, scene.mapping)
                compositor = None
                if keep_clear or cloud_mask:
                    compositor = Compositor.create(
                        cloud_detector, scene.band_names, scene.optical.positional, feather, keep_clear
                    )
                    run = compositor.wrap(run)
                make_parent(out)  # nothing is made before every check has passed
                return self.write(
                    scene,
                    out,
                    WindowGrid(scene.height, scene.width, window, overlap),
                    fmt,
                    run,
                    batch_size=batch_size,
                    num_threads=num_threads,
                    write_thread=write_thread,
                    progress=progress,
                    maps=names,
                    compositor=compositor,
                )

    def log_scene(self, scene: Scene, log: Callable[[str], None]) -> None:
        """Say how ``scene`` is given to the model (once per predictor), how its inputs are read, and
        one warning per way they differ from the model's input domain."""
        for line in by_domain.scene_lines(self.domain, self.described, scene.mapping):
            if line not in self._said:  # once per predictor, not once per scene
                log(line)
                self._said.add(line)
        for line in scene.notes:
            log(line)
        for line in by_domain.check_domain(self.domain, self.described, scene.report()):
            log(f"warning: {line}")

    def record(self) -> RunRecord:
        """What the files of a run say about the model: its tags (experiment and epoch, or the weight
        file; its input domain) and its weight files."""
        if self.weight_set is not None:
            tags = {"weights": str(self.weight_set.path), "model": self.opt.model}
            files = [self.weight_set.path]
        else:
            tags = {"experiment": self.name, "epoch": str(self.epoch), "model": self.opt.model}
            files = sorted((self.checkpoints_dir / self.name).glob(f"{self.epoch}_net_*.pth"))
        tags["model_input_domain"] = self.domain.describe()
        return RunRecord(self.opt.model, self.bands, self.roles, tags, tuple(files))

    def write(
        self,
        scene: Scene,
        out: str | os.PathLike,
        grid: WindowGrid,
        fmt: OutputFormat,
        forward: Forward,
        **settings,
    ) -> SceneResult:
        """Predict an open ``scene`` over ``grid`` into ``out`` (atomically), settings already checked
        (``settings``: those of :func:`scene.writing.write_scene`)."""
        return write_scene(scene, out, grid, fmt, forward, self.model.device, self.record(), **settings)


def predict_scene_file(
    cloudy: str | os.PathLike,
    sar: str | os.PathLike,
    out: str | os.PathLike,
    *,
    checkpoints_dir: str | os.PathLike = "./checkpoints",
    name: str,
    epoch: str | int = "latest",
    gpu_ids: str = "auto",
    model: str | None = None,
    **settings,
) -> SceneResult:
    """One scene with experiment ``name``: ``ScenePredictor(...).predict(cloudy, sar, out, **settings)``
    (see :meth:`ScenePredictor.predict` for the settings)."""
    return ScenePredictor(checkpoints_dir, name, epoch, gpu_ids=gpu_ids, model=model).predict(
        cloudy, sar, out, **settings
    )
