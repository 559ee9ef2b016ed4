"""Run cells or a notebook in a real Jupyter kernel (ipykernel over ZMQ, driven by nbclient).

One helper for every test that needs a kernel; tests that use it are marked ``kernel`` (see
conftest), so ``pytest -m "not browser and not slow and not kernel"`` is the quick loop.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run_notebook(
    nb: nbformat.NotebookNode, cwd: Path, *, allow_errors: bool = True, timeout: int = 120,
    save_as: str | None = None,
) -> nbformat.NotebookNode:
    """Execute ``nb`` in place in a fresh kernel started in ``cwd``; with ``save_as``, also write
    it there (as a person's saved notebook would be) and return it."""
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    if save_as is not None:
        nbformat.write(nb, cwd / save_as)
    return nb


def run_notebook_twice(
    nb: nbformat.NotebookNode, cwd: Path, *, timeout: int = 120
) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """Run All, then Run All again in the same kernel (a rehearsal, then the class): both runs."""
    import copy

    first, second = nb, copy.deepcopy(nb)
    client = NotebookClient(first, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(cwd)}})
    with client.setup_kernel():
        for i, cell in enumerate(first.cells):
            client.execute_cell(cell, i)
        client.nb = second
        for i, cell in enumerate(second.cells):
            client.execute_cell(cell, i)
    return first, second


def run_cells(cells: list[str], cwd: Path, **options: object) -> nbformat.NotebookNode:
    """A notebook of these code cells, executed (see ``run_notebook``)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    return run_notebook(nb, cwd, **options)  # type: ignore[arg-type]
