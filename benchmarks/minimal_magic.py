"""The yardstick for ``%load_ext aiml_magics``: the least a configurable cell magic can be.

One ``Magics`` class with one ``config=True`` trait and one cell magic, registered by
``%load_ext minimal_magic`` (``benchmarks/load_ipython.py --minimal`` measures the two alternately).
"""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class
from traitlets import Unicode


@magics_class
class MinimalMagics(Magics):
    model = Unicode("some/model", help="The model to ask.").tag(config=True)

    @cell_magic
    def minimal(self, line: str, cell: str) -> str:
        return f"{self.model}: {cell}"


def load_ipython_extension(shell: Any) -> None:
    shell.register_magics(MinimalMagics(shell=shell, parent=shell))
