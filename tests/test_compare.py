"""scripts/compare.py: the comparison pipeline at the smoke setting on tiny PNG triplets."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from comparison import make_plan
from comparison.figure import _stems_by_cloudiness, pick_rows
from comparison.report import read_table
from scripts import compare
from tests.helpers import expect_error, make_triplets, run_main

MODELS = "pix2pix_attn,template"


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("compare")
    make_triplets(root / "data" / "train", "train", n=3, size=32)
    make_triplets(root / "data" / "test", "test", n=3, size=32, seed=1)
    argv = ["--dataroot", str(root / "data"), "--setting", "smoke", "--models", MODELS, "--rows", "2"]
    argv += ["--protocols", "glf_cr,dsen2cr"]
    argv += ["--checkpoints_dir", str(root / "ck"), "--results_dir", str(root / "res")]
    assert run_main(compare.main, argv) == 0
    return root, argv


def test_tables_figure_and_page(done):
    root, _ = done
    out = root / "res" / "compare" / "smoke"
    rows = read_table(out)
    # Models in figure order (ours last), then the cloudy input.
    assert [r["model"] for r in rows] == ["template", "ours (attention GAN)", "cloudy input (no model)"]
    for row in rows[:2]:
        assert float(row["paper PSNR (dB)"]) > 0 and 0 < float(row["paper SSIM"]) <= 1
        assert float(row["parameters, inference (M)"]) > 0 and float(row["train s/iteration"]) > 0
        assert float(row["test images/s"]) > 0
    ours = json.loads((out / "runs" / "pix2pix_attn.json").read_text())
    # D trains only: the inference parameters exclude it.
    assert ours["parameters"]["inference_networks"] == ["A", "G", "G2"]
    assert ours["parameters"]["all"] - ours["parameters"]["inference"] == ours["parameters"]["networks"]["D"]
    md = (out / "table.md").read_text()
    assert "6 training images" in md and "Machine:" in md and "| cloudy input (no model) |" in md
    with Image.open(out / "figure.png") as fig:
        # Columns: SAR, attention, cloudy, template, ours, ground truth; 2 rows.
        assert fig.size[0] > fig.size[1] and fig.size[0] == 6 * (160 + 4) + 4
    page = (out / "index.html").read_text()
    assert page.count("<tr>") >= 3 + 1 + 3 and "figure.png" in page


def test_a_second_run_reuses_everything(done, capsys):
    root, argv = done
    record = (root / "res" / "compare" / "smoke" / "runs" / "template.json").read_text()
    capsys.readouterr()
    assert run_main(compare.main, argv) == 0
    said = capsys.readouterr().out
    assert said.count("trained already") == 2 and said.count("tested already") == 2
    assert (root / "res" / "compare" / "smoke" / "runs" / "template.json").read_text() == record


def test_another_budget_is_refused_not_mixed(done, capfd):
    root, argv = done
    expect_error(capfd, compare.main, [*argv, "--images", "9"], "another budget", "--name")


def test_bad_models_and_data(tmp_path, capfd):
    # A bad model name is refused first, before the data is looked at (or made).
    expect_error(
        capfd, compare.main, ["--dataroot", str(tmp_path), "--models", "nope"], "unknown model(s) nope"
    )
    expect_error(capfd, compare.main, ["--dataroot", str(tmp_path), "--models", "pix2pix"], "lacks train/")
    (tmp_path / "train").mkdir()
    make_triplets(tmp_path / "train", "train", n=1, size=32)
    expect_error(
        capfd,
        compare.main,
        ["--dataroot", str(tmp_path), "--models", "nope", "--setting", "smoke"],
        "unknown model(s) nope",
    )


def test_budget_and_rows():
    plan = make_plan(
        name="x", dataroot="d", setting="light", models_text="pix2pix_attn", images=1000, train_size=160
    )
    exp = plan.experiments[0]
    assert exp.epochs == 7 and plan.exp_budget(exp)["images_seen"] == 1120
    assert pick_rows(list("abcdefghij"), 4) == ["a", "d", "g", "j"] and pick_rows(["a"], 4) == ["a"]


def flag(flags, name):
    """The value of the last ``name`` in ``flags`` (argparse: the last one wins)."""
    return [flags[i + 1] for i, f in enumerate(flags) if f == name][-1]


def test_paper_setting_keeps_each_models_own_training():
    plan = make_plan(
        name="x", dataroot="d", setting="paper", models_text="glf_cr,dsen2cr,pix2pix_attn", train_size=10
    )
    exps = {e.model: e for e in plan.experiments}
    assert (exps["glf_cr"].epochs, exps["glf_cr"].batch_size) == (30, 1)
    assert exps["glf_cr"].schedule | {} == exps["glf_cr"].schedule and exps["glf_cr"].schedule["lr"] == 1e-4
    assert (exps["dsen2cr"].epochs, exps["dsen2cr"].batch_size, exps["dsen2cr"].schedule["lr"]) == (
        8,
        16,
        7e-5,
    )
    # The official scripts/train.sh: 210 + 100 epochs, x 0.1 every 100.
    ours = exps["pix2pix_attn"]
    assert (
        ours.epochs == 310 and ours.schedule["lr_policy"] == "step" and ours.schedule["lr_decay_iters"] == 100
    )
    assert "--batch_size" not in exps["glf_cr"].train_flags
    assert not plan.equal_budget and "authors' settings" in plan.budget_text()


def test_equal_budget_compresses_each_models_schedule_shape():
    plan = make_plan(
        name="x", dataroot="d", setting="light", models_text="glf_cr,pix2pix_attn", train_size=160
    )
    exps = {e.model: e for e in plan.experiments}
    glf, ours = exps["glf_cr"].train_flags, exps["pix2pix_attn"].train_flags
    # 20 epochs: GLF-CR's StepLR(5) of 30 epochs -> every 3; ours x 0.1 every 100 of 310 -> every 6.
    assert (flag(glf, "--lr_policy"), flag(glf, "--lr_decay_iters"), flag(glf, "--n_epochs")) == (
        "step",
        "3",
        "20",
    )
    assert (flag(ours, "--lr_policy"), flag(ours, "--lr_decay_iters")) == ("step", "6")
    assert int(flag(ours, "--n_epochs")) + int(flag(ours, "--n_epochs_decay")) == 20
    assert flag(glf, "--batch_size") == flag(ours, "--batch_size") == "4"
    assert "compressed" in plan.budget_text()


def test_zhang2023_setting_runs_the_papers_table():
    plan = make_plan(name="x", dataroot="d", setting="zhang2023", train_size=10)
    assert [e.model for e in plan.experiments] == [
        "pix2pix",
        "sar_opt_cgan",
        "sf_gan",
        "glf_cr",
        "pix2pix_attn",
    ]
    p2p = plan.experiments[0]
    assert flag(p2p.train_flags, "--gan_mode") == "lsgan" and flag(p2p.train_flags, "--lambda_L1") == "10"
    # Training-only flags stay out of test.py's command; the architecture's go in.
    assert "--gan_mode" not in p2p.test_flags and "--lambda_L1" not in p2p.test_flags
    assert flag(p2p.test_flags, "--norm") == "instance" and "--no_dropout" in p2p.test_flags
    extra = make_plan(name="x", dataroot="d", setting="zhang2023", models_text="dsen2cr", train_size=10)
    assert extra.to_json("-1", 0)["rows"][0]["label"] == "DSen2-CR (our addition)"


def test_plan_json_records_every_row(done):
    root, _ = done
    plan = json.loads((root / "res" / "compare" / "smoke" / "plan.json").read_text())
    assert plan["setting"] == "smoke" and "scripts.compare" in plan["command"]
    rows = {r["model"]: r for r in plan["rows"]}
    ours = rows["pix2pix_attn"]
    assert ours["test_mode"] == "train" and "--eval" not in ours["test_argv"]
    assert ours["train_data"]["crop_size"] == 32 and ours["train_data"]["no_flip"] is True
    assert ours["budget"]["epochs"] == 2 and ours["budget"]["images_seen"] == 6
    assert flag(ours["train_argv"], "--model") == "pix2pix_attn" and "--dataroot" in ours["test_argv"]


def test_cloud_aware_columns_order_and_plots(done):
    root, _ = done
    out = root / "res" / "compare" / "smoke"
    rows = read_table(out)
    for row in rows:  # every model and the cloudy input, over cloudy and over clear pixels
        for column in ("field PSNR, cloudy px (dB)", "field PSNR, clear px (dB)", "field SSIM, clear px"):
            assert float(row[column]) > 0, (row["model"], column)
    assert "Cloud mask of the cloudy inputs: rgb" in (out / "table.md").read_text()
    for name in ("coverage_histogram.png", "psnr_vs_coverage.png"):
        with Image.open(out / name) as img:
            assert img.size[0] > 300
    # The figure's rows (and the page's) follow measured coverage, most clouded first.
    plan = make_plan(
        name="smoke",
        dataroot=root / "data",
        setting="smoke",
        models_text=MODELS,
        checkpoints_dir=root / "ck",
        results_dir=root / "res",
        train_size=3,
    )
    coverage = {}
    with open(plan.experiments[0].test_dir / "metrics_per_image.csv") as fh:
        for r in csv.DictReader(fh):
            coverage[r["stem"]] = float(r["cloud_coverage"])
    order = _stems_by_cloudiness(plan)
    assert [coverage[s] for s in order] == sorted(coverage.values(), reverse=True)


def destinations(argv: list[str], model: str, is_train: bool) -> list[str]:
    """The destination of every option on a command line, in order (aliases and --no_x/--x alike)."""
    from comparison.settings import flag_groups
    from options.test_options import TestOptions
    from options.train_options import TrainOptions

    head = ["--model", model, "--dataset_mode", "triplet"]
    actions = (TrainOptions() if is_train else TestOptions()).build_parser(head)._option_string_actions
    return [actions[group[0]].dest for group in flag_groups(argv)]


@pytest.mark.parametrize("setting", ["smoke", "light", "paper", "zhang2023"])
def test_command_lines_hold_each_flag_once_and_only_what_the_model_reads(setting):
    from models import find_model_using_name

    plan = make_plan(name="x", dataroot="d", setting=setting, models_text="all", train_size=160)
    for exp in plan.experiments:
        ignored = set(find_model_using_name(exp.model).ignored_options)
        for argv, is_train in ((plan.train_argv(exp, "-1", 0), True), (plan.test_argv(exp, "-1", 0), False)):
            dests = destinations(argv, exp.model, is_train)
            assert len(dests) == len(set(dests)), (setting, exp.model, argv)
            assert not ignored & set(dests), (setting, exp.model, argv)
    if setting == "light":
        glf = next(e for e in plan.experiments if e.model == "glf_cr")
        assert "--netG" not in glf.train_flags and "--ngf" not in glf.test_flags


def test_zhang2023_pix2pix_runs_their_registrys_file_unless_told(capfd):
    plan = make_plan(name="x", dataroot="d", setting="zhang2023", models_text="pix2pix", train_size=10)
    p2p = plan.experiments[0]
    assert p2p.variant == "pix2pix_model" and flag(p2p.train_flags, "--lambda_ssim") == "1"
    assert "our choice" in p2p.label and plan.to_json("-1", 0)["rows"][0]["zhang_variant"] == "pix2pix_model"
    plain = make_plan(
        name="x",
        dataroot="d",
        setting="zhang2023",
        models_text="pix2pix",
        train_size=10,
        variants={"pix2pix": "pix2pix_model3"},
    ).experiments[0]
    assert flag(plain.train_flags, "--lambda_ssim") == "0" and plain.train_flags.count("--lambda_ssim") == 1
    # Outside zhang2023 there is no variant and no SSIM term.
    light = make_plan(name="x", dataroot="d", setting="light", models_text="pix2pix", train_size=10)
    assert light.experiments[0].variant is None and "--lambda_ssim" not in light.experiments[0].train_flags
    for argv, fragment in (
        (["--setting", "zhang2023", "--zhang_variant", "pix2pix=nope"], "choose one of pix2pix_model"),
        (
            ["--setting", "light", "--zhang_variant", "pix2pix=pix2pix_model3"],
            "only with --setting zhang2023",
        ),
        (["--setting", "zhang2023", "--zhang_variant", "glf_cr=x"], "has no variants"),
    ):
        expect_error(capfd, compare.main, ["--dataroot", "nowhere", *argv], fragment)


def test_a_row_of_plan_json_reruns_by_hand_to_the_same_result(done, tmp_path):
    import torch

    import test as test_script
    import train as train_script

    root, _ = done
    out = root / "res" / "compare" / "smoke"
    row = next(r for r in json.loads((out / "plan.json").read_text())["rows"] if r["model"] == "template")

    def moved(argv: list[str]) -> list[str]:
        swap = {"--checkpoints_dir": str(tmp_path / "ck"), "--results_dir": str(tmp_path / "res")}
        return [swap.get(argv[i - 1], a) if i else a for i, a in enumerate(argv)]

    assert run_main(train_script.main, moved(row["train_argv"])) == 0
    assert run_main(test_script.main, moved(row["test_argv"])) == 0
    for path in (root / "ck" / "compare_smoke" / "template").glob("latest_net_*.pth"):
        theirs = torch.load(tmp_path / "ck" / "template" / path.name, weights_only=True)
        mine = torch.load(path, weights_only=True)
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), path.name
    summary = "template/test_latest/metrics_summary.json"
    assert (
        json.loads((tmp_path / "res" / summary).read_text())["results"]
        == json.loads((out / "runs" / summary).read_text())["results"]
    )


def test_other_papers_protocols_beside_ours(done, capfd):
    root, argv = done
    out = root / "res" / "compare" / "smoke"
    rows = read_table(out)
    for row in rows:  # every model and the cloudy input
        assert float(row["glf_cr PSNR (dB)"]) > 0 and 0 < float(row["dsen2cr SSIM"]) <= 1, row["model"]
    assert "allclear PSNR (dB)" not in rows[0]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["protocols"] == ["glf_cr", "dsen2cr"]
    assert all(flag(r["test_argv"], "--protocols") == "glf_cr,dsen2cr" for r in plan["rows"])
    # More protocols: the models are tested again, not trained again.
    capfd.readouterr()
    at = argv.index("--protocols") + 1
    more = [*argv[:at], "glf_cr,dsen2cr,allclear,uncrtaints", *argv[at + 1 :]]
    assert run_main(compare.main, more) == 0
    said = capfd.readouterr().out
    assert (
        said.count("trained already") == 2
        and said.count("testing again for protocol(s) allclear, uncrtaints") == 2
    )
    rows = read_table(out)
    for row in rows:
        their, spectral = (
            float(row["allclear SAM (deg, their code)"]),
            float(row["allclear SAM (deg, spectral)"]),
        )
        assert their > 0 and spectral > 0 and their != spectral
        assert row["uncrtaints PSNR (dB)"] == row["field PSNR (dB)"]
    md = (out / "table.md").read_text()
    assert "Other papers' protocols" in md and "normalises along image rows" in md
    bad = [*argv[:at], "glf_cr,nope", *argv[at + 1 :]]
    expect_error(capfd, compare.main, bad, "--protocols: unknown protocol(s) nope")
