"""The results page: one row per image in the given visual order, that image's metrics, and the
orderings by PSNR (worst / best first) one click away."""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser

import pytest

import test as test_script
import train
from display.results_page import PAGES, role_labels, write_results_page
from metrics import MetricsTable
from models.pix2pix_attn_model import Pix2PixAttnModel
from tests.helpers import make_triplets, test_argv, train_argv

PSNR = {"s0": 21.5, "s1": 30.25, "s2": 12.0, "s3": 25.0}


class Rows(HTMLParser):
    """Each ``tr`` of ``table.results``: its id, the texts and the image sources, in page order."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self.links: list[str] = []
        self._depth = 0  # nesting of table.results

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if tag == "table" and attrs.get("class") == "results":
            self._depth = 1
        elif tag == "table" and self._depth:
            self._depth += 1
        if tag == "tr" and self._depth == 1:
            self.rows.append({"id": attrs.get("id"), "text": "", "imgs": []})
        if tag == "img" and self._depth:
            self.rows[-1]["imgs"].append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "table" and self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth and self.rows:
            self.rows[-1]["text"] += data + " "


def parse(path) -> Rows:
    parser = Rows()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def metrics_table() -> MetricsTable:
    table = MetricsTable(reference="real_B")
    for stem, psnr in PSNR.items():
        table.add(stem, "fake_B", "paper", {"psnr": psnr, "ssim": 0.5})
        table.add(stem, "real_A", "paper", {"psnr": psnr - 5, "ssim": 0.25})
        table.add(stem, "fake_B", "field", {"rmse": 0.1, "psnr": 99.0})
        table.add(stem, "real_A", "field", {"rmse": 0.2, "psnr": 1.0})
    return table


VISUALS = ["real_C", "att_A", "real_A", "fake_B", "real_B", "fake_C"]


def rows_for(stems) -> list:
    return [(s, [(v, f"{s}_{v}.png") for v in VISUALS]) for s in stems]


def test_one_row_per_image_in_the_given_order_with_its_metrics(tmp_path):
    paths = write_results_page(tmp_path, "exp", metrics_table(), rows_for(PSNR), labels={"real_C": "SAR"})
    assert [p.name for p in paths] == list(PAGES)
    page = parse(tmp_path / "index.html")
    assert [r["id"] for r in page.rows] == ["img-0", "img-1", "img-2", "img-3"]
    for row, stem in zip(page.rows, PSNR):
        assert row["imgs"] == [f"images/{stem}_{v}.png" for v in VISUALS]
        assert row["text"].split()[0] == stem
        assert f"{PSNR[stem]:.4f}" in row["text"] and f"{PSNR[stem] - 5:.4f}" in row["text"]
        assert "paper psnr" in row["text"] and "field rmse" in row["text"]
        assert "SAR (real_C)" in row["text"] and "att_A" in row["text"]
    html = (tmp_path / "index.html").read_text()
    assert html.count('class="metrics"') == 2  # the mean tables: paper and field protocol
    assert "PSNR rank 1 of 4 (1 = worst)" in page.rows[2]["text"]  # s2: 12 dB
    assert "PSNR rank 4 of 4" in page.rows[1]["text"]  # s1: 30.25 dB


def test_pages_ordered_by_psnr_and_jumps_to_the_worst_and_best(tmp_path):
    write_results_page(tmp_path, "exp", metrics_table(), rows_for(PSNR))
    worst = parse(tmp_path / "index_worst_first.html")
    best = parse(tmp_path / "index_best_first.html")
    by_psnr = sorted(PSNR, key=PSNR.get)
    assert [r["text"].split()[0] for r in worst.rows] == by_psnr
    assert [r["text"].split()[0] for r in best.rows] == by_psnr[::-1]
    for name in PAGES:
        page = parse(tmp_path / name)
        others = [p for p in PAGES if p != name]
        assert [link for link in page.links if link.endswith(".html")] == others
        assert "#img-2" in page.links and "#img-1" in page.links  # worst s2, best s1: the row ids
    html = (tmp_path / "index.html").read_text()
    assert "worst: s2 (12.00 dB)" in html and "best: s1 (30.25 dB)" in html


def test_without_measurements_only_the_test_order(tmp_path):
    paths = write_results_page(tmp_path, "exp", None, rows_for(["a", "b"]), note="nothing measured")
    assert [p.name for p in paths] == ["index.html"]
    html = (tmp_path / "index.html").read_text()
    assert "nothing measured" in html and "rank" not in html and 'class="metrics"' not in html
    assert [r["id"] for r in parse(tmp_path / "index.html").rows] == ["img-0", "img-1"]


def test_nan_and_infinite_psnr_sort_as_worst_and_best(tmp_path):
    table = MetricsTable()
    for stem, psnr in (("same", float("inf")), ("mid", 20.0), ("broken", float("nan"))):
        table.add(stem, "fake_B", "paper", {"psnr": psnr, "ssim": 1.0})
        table.add(stem, "real_A", "paper", {"psnr": 10.0, "ssim": 1.0})
    write_results_page(tmp_path, "t", table, rows_for(["same", "mid", "broken"]))
    assert [r["text"].split()[0] for r in parse(tmp_path / "index_worst_first.html").rows] == [
        "broken",
        "mid",
        "same",
    ]


def test_role_labels_follow_the_declaration():
    labels = role_labels(Pix2PixAttnModel.roles)
    assert labels == {
        "real_C": "SAR",
        "att_A": "attention",
        "att_overlay": "attention overlay",
        "real_A": "cloudy",
        "fake_B": "output",
        "real_B": "ground truth",
    }


@pytest.fixture(scope="module")
def tested(tmp_path_factory):
    root = tmp_path_factory.mktemp("results_page")
    make_triplets(root / "data", "train", n=2)
    stems = make_triplets(root / "data", "test", n=3, seed=3)
    assert train.main(train_argv(root / "data", root / "ckpt", "rp")) == 0
    assert test_script.main(test_argv(root / "data", root / "ckpt", root / "res", "rp")) == 0
    return root / "res" / "rp" / "test_latest", stems


def test_test_py_page_follows_the_papers_figure(tested):
    web, stems = tested
    page = parse(web / "index.html")
    assert len(page.rows) == len(stems)
    for row, stem in zip(page.rows, stems):
        visuals = [re.sub(rf"^images/{stem}_(.+)\.png$", r"\1", src) for src in row["imgs"]]
        # SAR | attention | cloudy | output | ground truth, then G2's SAR translation and G's content
        assert visuals == ["real_C", "att_A", "att_overlay", "real_A", "fake_B", "real_B", "fake_C", "g_B"]
        for src in row["imgs"]:
            assert (web / src).is_file()
    for name in PAGES:
        assert (web / name).is_file()
    with open(web / "metrics_per_image.csv", newline="") as f:
        psnr = {r["stem"]: float(r["paper_psnr"]) for r in csv.DictReader(f) if r["comparison"] == "fake_B"}
    worst = [r["text"].split()[0] for r in parse(web / "index_worst_first.html").rows]
    assert worst == sorted(psnr, key=psnr.get)
