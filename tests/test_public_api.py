"""The top-level shims (``echo_utils.camus``, ``.phantom``, ``.fusion``) are DESIGN.md's public API and nothing else."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "echo_utils"

#: DESIGN.md, "Public API (contract)": the names each shim keeps
CONTRACT = {
    "camus": ("data.camus",
              {"EchoSequence", "load_sequence", "load_ted_sequence", "iter_sequences", "resize_sequence"}),
    "phantom": ("data.phantom_cohort", {"make_cohort"}),
    "fusion": ("pseudolabels", {"propagate", "fuse_bidirectional", "pseudo_labels", "PseudoLabels"}),
}


def _imported_modules(path: Path) -> set[str]:
    """The ``echo_utils`` modules a file of the package imports (absolute names; relative imports resolved)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts if path.name == "__init__.py" else parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # ``from . import fusion``
    return out


def test_shims_export_the_contract_names_only_and_nothing_imports_them():
    for shim, (home, names) in CONTRACT.items():
        mod = importlib.import_module(f"echo_utils.{shim}")
        impl = importlib.import_module(f"echo_utils.{home}")
        assert set(mod.__all__) == names, shim
        assert {n for n in vars(mod) if not n.startswith("_")} == names, shim  # no other public name
        assert all(getattr(mod, n) is getattr(impl, n) for n in names), shim  # the same objects, not copies
    assert not (PACKAGE / "nnunet.py").exists()  # the nnU-Net glue is echo_utils.segmentation
    shims = {f"echo_utils.{s}" for s in CONTRACT}
    users = {str(p.relative_to(PACKAGE.parent)): sorted(_imported_modules(p) & shims)
             for p in PACKAGE.rglob("*.py") if p.stem not in CONTRACT or p.parent != PACKAGE}
    assert {k: v for k, v in users.items() if v} == {}
