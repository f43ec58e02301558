"""Run a trained model on a test set, save every visual, measure it, and build a results page.

    python test.py --dataroot DATA/test --name realcloud_21 --model pix2pix_attn --no_dropout \
        --display_id 0 --batchSize 1 --gpu_ids 0 --dataset_mode unaligned_sar --no_flip

Writes ``results/<name>/<phase>_<epoch>/``: ``images/<stem>_<visual>.png`` (the model's visuals
in the page order it declares), ``index.html``, and ``metrics_per_image.csv`` and
``metrics_summary.json`` (output and cloudy input vs ground truth; with each image's cloud coverage
and the metrics over its cloudy and its clear pixels, see ``--cloud_detector``), and
``metrics_by_coverage.csv`` (means per coverage bin). A model that predicts its uncertainty
(UnCRtainTS) also gets ``images/<stem>_uncertainty.npy`` (the predicted variance, float32
(1, H, W), [0, 1] data units squared: ``scripts.evaluate --var`` reads it), each image's mean
variance and errors (protocol ``uncertainty``) and the calibration scores UCE and AUCE. Without a ground-truth folder
(``<phase>B``: real cloudy scenes) the outputs and the page are written and nothing is measured.
"""

from __future__ import annotations

import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data import create_dataloader
from display.results_page import role_labels, write_results_page
from metrics import MetricsTable, field_metrics, paper_metrics
from metrics.authors import AuthorProtocols
from metrics.cloud_masks import CloudMasker, MissingDependency
from metrics.coverage import format_metrics, measure_split
from metrics.uncertainty import PROTOCOL as UNCERTAINTY
from metrics.uncertainty import uncertainty_metrics
from models import create_model
from options.test_options import TestOptions
from util.errors import UserError, run_cli
from util.fileio import atomic_path
from util.util import batch_item, save_image, to_unit, visuals_to_images

NO_REFERENCE = "no cloud-free images (<phase>B) in --dataroot: outputs written, nothing measured"


def measure(
    table: MetricsTable,
    stem: str,
    visuals: dict,
    images: dict,
    roles,
    rgb_bands=None,
    masker=None,
    authors: AuthorProtocols | None = None,
) -> None:
    """The model's output and the cloudy input against the ground truth, under the paper and
    field protocols; ``roles`` (the model's) names the three.

    ``rgb_bands`` (positions of B4, B3, B2 in multispectral data) adds the field protocol on them
    alone ('field_rgb'); the paper protocol is measured on the 8-bit previews in ``images``.
    ``masker`` (a `CloudMasker`) adds the cloudy input's cloud coverage and both protocols over
    its cloudy and its clear pixels ('paper_cloudy', 'field_clear', ...). ``authors`` adds other
    papers' protocols (``--protocols``) on the same reflectance. A predicted variance
    (``roles.uncertainty``) adds the output's 'uncertainty' statistics (`metrics.uncertainty`).
    """
    truth_u8, truth_unit = images[roles.reference], to_unit(visuals[roles.reference])
    mask = None
    if masker is not None and masker.active:
        mask = masker(to_unit(visuals[roles.cloudy]))
        table.set_coverage(stem, float(mask.mean()), masker.name)
    for name in (roles.output, roles.cloudy):
        pred_unit = to_unit(visuals[name])
        table.add(stem, name, "paper", paper_metrics(images[name], truth_u8))
        table.add(stem, name, "field", field_metrics(pred_unit, truth_unit))
        if rgb_bands is not None:
            rgb = list(rgb_bands)
            table.add(stem, name, "field_rgb", field_metrics(pred_unit[rgb], truth_unit[rgb]))
        if mask is not None:
            measure_split(table, stem, name, "paper", paper_metrics, images[name], truth_u8, mask)
            measure_split(table, stem, name, "field", field_metrics, pred_unit, truth_unit, mask)
        if authors is not None:
            try:
                replayed = authors.measure(pred_unit, truth_unit, to_unit(visuals[roles.cloudy]))
            except ValueError as err:
                raise UserError(f"--protocols on {stem}: {err}") from None
            for protocol, values in replayed.items():
                table.add(stem, name, protocol, values)
    for name in getattr(roles, "uncertainty", ())[:1]:
        variance = visuals[name][0].detach().float().cpu().numpy()
        stats = uncertainty_metrics(to_unit(visuals[roles.output]), truth_unit, variance)
        table.add(stem, roles.output, UNCERTAINTY, stats)


def cloud_masker(opt, dataset) -> CloudMasker:
    """The ``--cloud_detector`` for the data's optical bands (a one-line error if it cannot run)."""
    try:
        return CloudMasker(opt.cloud_detector, dataset.band_names, opt.input_nc)
    except MissingDependency as err:
        raise UserError(f"--cloud_detector {opt.cloud_detector}: {err}") from None
    except ValueError as err:
        raise UserError(f"--cloud_detector {opt.cloud_detector}: {err}; choose another detector") from None


def author_protocols(opt, dataset) -> AuthorProtocols:
    """The ``--protocols`` for the data's bands (a one-line error if one cannot run on them)."""
    try:
        return AuthorProtocols(opt.protocols, dataset.band_names, opt.input_nc, opt.cloud_detector)
    except MissingDependency as err:
        raise UserError(f"--protocols allclear with --cloud_detector {opt.cloud_detector}: {err}") from None
    except ValueError as err:
        raise UserError(f"--protocols {','.join(opt.protocols)}: {err}") from None


def write_sample(
    sample: dict,
    stem: str,
    batch: dict,
    i: int,
    *,
    roles,
    dataset,
    image_dir: Path,
    opt,
    table,
    masker,
    authors,
):
    """Render one sample's visuals, write them, measure them; return the page order of its images.

    Runs on the writer thread (one, so samples are written and measured in submission order)
    while the main thread computes the next batch.
    """
    images = visuals_to_images(sample, roles, previewer=dataset.preview)
    names = roles.ordered(images)
    for name in names:
        save_image(images[name], image_dir / f"{stem}_{name}.png", opt.aspect_ratio)
    for name in getattr(roles, "uncertainty", ()):  # the variance itself, for scripts.evaluate --var
        with atomic_path(image_dir / f"{stem}_{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, sample[name][0].detach().float().cpu().numpy())
    if table is not None:
        measure(table, stem, sample, images, roles, dataset.rgb_bands, masker, authors)
    dataset.write_output(image_dir, stem, roles.output, sample[roles.output], batch, i)
    return names


def run_test(argv: list[str] | None = None) -> int:
    opt = TestOptions().parse(argv, save=False)
    ckpt_dir = Path(opt.checkpoints_dir) / opt.name
    if not opt.weights and not ckpt_dir.is_dir():
        raise UserError(f"no experiment {ckpt_dir}; check --name and --checkpoints_dir")
    loader = create_dataloader(opt)
    dataset = loader.dataset  # GeoTIFF datasets render previews and write georeferenced outputs
    measured = dataset.has_reference
    masker = cloud_masker(opt, dataset) if measured else None
    authors = author_protocols(opt, dataset) if measured and opt.protocols else None
    # Every weight is loaded: the random initialisation is skipped, unless the networks draw
    # random numbers (dropout in train mode), whose draws follow the initialisation's.
    model = create_model(opt, weights_follow=True)
    roles = model.roles
    model.setup()
    # The mode the model's authors test in (its declaration), unless --test_mode says otherwise.
    model.apply_test_mode(opt.test_mode)
    declared = type(model).test_mode
    said = (
        "as its authors test it"
        if opt.test_mode == declared
        else f"--test_mode; its authors test in {declared}"
    )
    print(f"testing in {opt.test_mode} mode ({said})")

    web_dir = Path(opt.results_dir) / opt.name / f"{opt.phase}_{opt.epoch}"
    image_dir = web_dir / "images"
    try:
        image_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"cannot create {image_dir}: {err.strerror}; choose a writable --results_dir"
        ) from None
    TestOptions().save_options(opt, TestOptions().build_parser(argv))
    table = MetricsTable(reference=roles.reference)
    table.bins = opt.coverage_bins
    total = int(min(opt.num_test, len(loader.dataset)))
    done, sections = 0, []
    # Writing and measuring overlap the next batch's computation; at most two batches wait.
    pending: deque[tuple[str, Future]] = deque()
    context = dict(
        roles=roles,
        dataset=dataset,
        image_dir=image_dir,
        opt=opt,
        table=table if measured else None,
        masker=masker,
        authors=authors,
    )
    with (
        tqdm(total=total, desc="testing", unit="img", file=sys.stdout) as bar,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer") as writer,
    ):

        def finish(limit: int) -> None:
            while len(pending) > limit:
                stem, future = pending.popleft()
                sections.append((stem, future.result()))
                bar.update(1)

        for batch in loader:
            if done >= total:
                break
            model.set_input(batch)
            visuals = model.test()
            for i in range(min(len(batch["stem"]), total - done)):
                stem = batch["stem"][i]
                sample = batch_item(visuals, i)
                pending.append((stem, writer.submit(write_sample, sample, stem, batch, i, **context)))
                done += 1
            finish(limit=2 * opt.batch_size)
        finish(limit=0)

    if measured:
        table.write_csv(web_dir / "metrics_per_image.csv")
        table.write_summary_json(web_dir / "metrics_summary.json")
        if table.coverage:
            table.write_bins_csv(web_dir / "metrics_by_coverage.csv")
    rows = [(stem, [(n, f"{stem}_{n}.png") for n in names]) for stem, names in sections]
    write_results_page(
        web_dir,
        f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.epoch}",
        table if measured else None,
        rows,
        output=roles.output,
        cloudy=roles.cloudy,
        labels=role_labels(roles),
        width=opt.display_winsize,
        note=None if measured else NO_REFERENCE,
    )
    print(format_metrics(table) if measured else NO_REFERENCE)
    print(f"{done} images tested; results page: {(web_dir / 'index.html').resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run_test(argv))


if __name__ == "__main__":
    sys.exit(main())
