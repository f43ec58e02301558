"""Metrics for cloud removal: per-image functions under two labelled protocols, the table that
averages and writes them, and the readers and folder pairing behind ``python -m scripts.evaluate``.

``protocols``  `paper_metrics` (what the official metrics.py computed on 8-bit RGB) and
               `field_metrics` (UnCRtainTS' convention on reflectance in [0, 1], all bands);
``ssim``       the two SSIMs, each reproducing its reference implementation;
``authors``    other papers' evaluation protocols (GLF-CR's, DSen2-CR's, AllClear's, UnCRtainTS'),
               replayed on our outputs (their SSIMs: ``authors_ssim``);
``table``      `MetricsTable`: per-image CSV, summary JSON, plain-text table;
``readers``    RGB images and multiband rasters (GeoTIFF, .npy) into each protocol's layout;
``folders``    `evaluate_folders`: two folders paired by file stem;
``cloud_masks`` the field's cloud detectors (s2cloudless, the rule-based cloud/shadow detector, its
               RGB rule) for cloud coverage;
``coverage``   metrics over cloudy and over clear pixels, coverage bins.
The protocols are described in docs/metrics.md.
"""

from metrics.folders import FORMATS, PROTOCOLS, check_pairing, collect_files, evaluate_folders
from metrics.protocols import field_metrics, paper_metrics, psnr_from_mse, spectral_angle, to_unit_chw
from metrics.readers import file_kind, read_image, read_reflectance, to_uint8
from metrics.ssim import field_ssim, paper_ssim
from metrics.table import PROTOCOL_DESCRIPTIONS, MetricsTable

__all__ = [
    "FORMATS",
    "PROTOCOLS",
    "PROTOCOL_DESCRIPTIONS",
    "MetricsTable",
    "check_pairing",
    "collect_files",
    "evaluate_folders",
    "field_metrics",
    "field_ssim",
    "file_kind",
    "paper_metrics",
    "paper_ssim",
    "psnr_from_mse",
    "read_image",
    "read_reflectance",
    "spectral_angle",
    "to_uint8",
    "to_unit_chw",
]
