"""What a model declares about its data: the inputs it reads and the roles of its visuals.

Pages, metrics, previews and whole-scene inference read a model's :class:`Roles` instead of
naming one model's visuals.
"""

from __future__ import annotations

from dataclasses import dataclass

# Visual names of the inputs, fixed by the batch convention: 'A' cloudy, 'B' cloud-free, 'C' SAR.
INPUT_VISUALS = {"A": "real_A", "B": "real_B", "C": "real_C"}
BAND_OPTIONS = {"A": "--input_nc", "B": "--output_nc", "C": "--sar_nc"}


@dataclass(frozen=True)
class Roles:
    """What a model reads and what its visuals are; declared once per model class.

    - ``uses_sar``: :meth:`BaseModel.infer` needs the SAR image (else it is passed None).
    - ``output``: the visual that is the cloud-free estimate (measured against ``real_B``).
    - ``sar``: visuals holding SAR bands (previewed as SAR, never measured).
    - ``attention``: visuals that are maps in [0, 1] (shown as heat maps; the first also as
      ``att_overlay`` over the cloudy input).
    - ``uncertainty``: visuals that are per-pixel predicted variances (B, 1, H, W), >= 0, in the
      data's [0, 1] units squared (reflectance^2 for Sentinel-2), averaged over the bands; shown as
      heat maps, measured for calibration against the output's errors, written by ``--maps``.
    - ``page_order``: visuals in the order pages show them (visuals not listed follow, sorted).
    """

    uses_sar: bool = True
    output: str = "fake_B"
    sar: tuple[str, ...] = ("real_C",)
    attention: tuple[str, ...] = ()
    uncertainty: tuple[str, ...] = ()
    page_order: tuple[str, ...] = ("real_C", "real_A", "fake_B", "real_B")
    cloudy: str = "real_A"
    reference: str = "real_B"

    def kind(self, name: str) -> str:
        """'attention', 'uncertainty', 'sar' or 'optical': how the visual ``name`` is rendered."""
        if name in self.attention or name == "att_overlay":
            return "attention"
        if name in self.uncertainty:
            return "uncertainty"
        return "sar" if name in self.sar else "optical"

    @property
    def maps(self) -> tuple[str, ...]:
        """The per-pixel maps a scene run can write beside the output: attention, then uncertainty."""
        return (*self.attention, *self.uncertainty)

    def ordered(self, names) -> list[str]:
        """``names`` in page order; names the declaration does not list follow, sorted."""
        names = list(names)
        listed = [n for n in self.page_order if n in names]
        return listed + sorted(n for n in names if n not in listed)
