"""Electrode materials and their charge-injection capacity (CIC), each number with its source.

The charge-injection capacity is the largest charge density per phase an electrode
material passes reversibly (without driving its potential past the water window),
measured in vitro with charge-balanced, cathodic-first current pulses. It depends on
pulse width, bias and area, so every material carries the published *range* and one
*nominal* value inside it; the safety envelope multiplies the nominal value by a
safety factor (:class:`~neurolace.stim.envelope.EnvelopeLimits`). Units: µC/cm² per
phase (1 mC/cm² = 1,000 µC/cm²). Measure your own electrodes and pass
``cic_uc_per_cm2=`` to the envelope's limits when you know better.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from neurolace.core.checks import check_in

__all__ = ["MATERIALS", "MATERIAL_NAMES", "Material", "check_material"]


@dataclass(frozen=True)
class Material:
    """One electrode material's charge-injection capacity.

    Attributes
    ----------
    name : str
        The name the pattern schema uses (``"SIROF"``).
    cic_uc_per_cm2 : float
        The nominal charge-injection capacity the envelope uses, in µC/cm² per phase.
    cic_range_uc_per_cm2 : tuple of float
        The published range (low, high) in µC/cm² per phase.
    source : str
        Where the numbers come from.
    """

    name: str
    cic_uc_per_cm2: float
    cic_range_uc_per_cm2: tuple[float, float]
    source: str


_TABLE = (
    # Pt: 0.05-0.15 mC/cm2 (Cogan 2008, Annu Rev Biomed Eng 10:275, Table 1, after Rose & Robblee 1990);
    # Merrill, Bikson & Jefferys 2005 (J Neurosci Methods 141:171) review the same reversible limit.
    Material("Pt", 100.0, (50.0, 150.0), "Cogan 2008 Table 1; Rose & Robblee 1990; Merrill et al. 2005"),
    # PtIr: the alloys behave as Pt, 0.05-0.15 mC/cm2 (Cogan 2008 Table 1); Cogan et al. 2004 found AIROF
    # injects 4-10x the charge of PtIr microelectrodes of the same area.
    Material("PtIr", 100.0, (50.0, 150.0), "Cogan 2008 Table 1; Cogan et al. 2004"),
    # IrOx (activated iridium oxide, AIROF): 1-5 mC/cm2 (Cogan 2008 Table 1); at most 3.9 mC/cm2 with a
    # 0.7 V anodic bias at 20 Hz (Cogan et al. 2004). Nominal 2 mC/cm2: no bias assumed.
    Material("IrOx", 2000.0, (1000.0, 5000.0), "Cogan 2008 Table 1; Cogan et al. 2004"),
    # SIROF (sputtered iridium oxide, the tips of the Utah arrays in human ICMS): 1-9 mC/cm2 depending on
    # pulse width (0.2-1 ms) and bias (Cogan et al. 2009, J Biomed Mater Res B 89:353). Nominal 3 mC/cm2;
    # Negi et al. 2010 (J Neurosci Methods 186:8) saw no damage to SIROF Utah tips at 1.9 mC/cm2 (60 nC)
    # after 7 h of continuous 50 Hz pulsing.
    Material("SIROF", 3000.0, (1000.0, 9000.0), "Cogan et al. 2009; Negi et al. 2010"),
    # PEDOT: charge-injection limit 2.3 mC/cm2 on thin-film Pt (Cui & Zhou 2007, IEEE TNSRE 15:502).
    Material("PEDOT", 2300.0, (2300.0, 2300.0), "Cui & Zhou 2007"),
)

#: every known material by name (read-only)
MATERIALS = MappingProxyType({material.name: material for material in _TABLE})
#: the names the pattern schema accepts, in the order the docs list them
MATERIAL_NAMES = tuple(MATERIALS)


def check_material(name: object, parameter: str = "material") -> Material:
    """Return the :class:`Material` called ``name``; the error lists the known names."""
    check_in(name, parameter, MATERIAL_NAMES)
    return MATERIALS[name]
