"""neurolace: an open-source platform for intracortical brain-computer interfaces.

The package is layered (see docs/architecture.md): ``core`` and ``io`` at the
bottom, ``dsp`` and ``sim`` above them, one package per capability above those
(``decode``, ``tasks``, ``codec``, ...), then ``runtime`` and the apps.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
