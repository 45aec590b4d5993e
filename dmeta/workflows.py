"""CBMA workflows: estimator -> corrector -> diagnostics on the corrected maps, NiMARE's way.

Diagnostics are called generically (a copy of each, with ``target_image`` set, then
``.transform(result)``), on the corrected z maps NiMARE's workflows diagnose.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from dmeta.ale import ALE
from dmeta.base import DmetaBase, param_defaults
from dmeta.coordinates import CoordinateSet
from dmeta.correct import FDRCorrector, FWECorrector
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.results import MetaResult
from dmeta.subtraction import ALESubtraction

_CORRECTORS = {"montecarlo": FWECorrector, "fdr": FDRCorrector}
_PAIRWISE_MASS = "_desc-group1MinusGroup2Mass"
_PAIRWISE_VOXEL = "_desc-group1MinusGroup2_level-voxel"


def _diagnostic_classes():
    from dmeta import diagnostics

    return {"focuscounter": diagnostics.FocusCounter, "jackknife": diagnostics.Jackknife}


class _Workflow(DmetaBase):
    _estimators = {}
    _estimator_type = None

    def __init__(self, estimator: ALE | str | None = None,
                 corrector: FWECorrector | FDRCorrector | str | None = None,
                 diagnostics: Any = None, voxel_thresh: float = 1.65,
                 cluster_threshold: int = 10, output_dir: str | os.PathLike | None = None):
        self.estimator = estimator
        self.corrector = corrector
        self.diagnostics = diagnostics
        self.voxel_thresh = voxel_thresh
        self.cluster_threshold = cluster_threshold
        self.output_dir = output_dir
        # As in NiMARE, an unknown estimator, corrector or diagnostic fails here, not at fit.
        self._steps()

    def _steps(self):
        """The estimator, corrector and diagnostics objects the parameters name.

        Resolved at each fit, so that ``set_params`` takes effect as it does for any
        other parameter.
        """
        estimator = _resolve(self.estimator, self._estimators, self._estimator_type,
                             "estimator")
        corrector = _resolve(self.corrector or "montecarlo", _CORRECTORS,
                             tuple(_CORRECTORS.values()), "corrector")
        diagnostics = self.diagnostics
        if diagnostics is None:
            diagnostics = []
        elif not isinstance(diagnostics, (list, tuple)):
            diagnostics = [diagnostics]
        return estimator, corrector, [self._with_defaults(_resolve_diagnostic(d))
                                      for d in diagnostics]

    def _with_defaults(self, diagnostic):
        """A copy of ``diagnostic`` with the workflow's cluster settings for parameters it
        left at default (read from its constructor: user-written diagnostics qualify)."""
        diagnostic = copy.deepcopy(diagnostic)
        defaults = param_defaults(type(diagnostic))
        for name, value in (("voxel_thresh", self.voxel_thresh),
                            ("cluster_threshold", self.cluster_threshold)):
            if name in defaults and getattr(diagnostic, name, None) == defaults[name]:
                setattr(diagnostic, name, value)
        return diagnostic

    def _run(self, *csets):
        """Fit the estimator to ``csets``, correct, and run each diagnostic on each target."""
        estimator, corrector, diagnostics = self._steps()
        corrected = corrector.transform(estimator.fit(*csets))
        for target in self.target_images(corrected, isinstance(corrector, FWECorrector)):
            for diagnostic in diagnostics:
                diagnostic = copy.copy(diagnostic)
                diagnostic.target_image = target
                corrected = diagnostic.transform(corrected)
        if self.output_dir is not None:
            out = Path(self.output_dir)
            corrected.save_nifti(out)
            (out / "boilerplate.txt").write_text(corrected.description)
        return corrected

    def target_images(self, result: MetaResult, montecarlo: bool) -> list[str]:
        """Corrected z maps to diagnose (``montecarlo``: the result of Monte Carlo FWE)."""
        raise NotImplementedError


@fill_doc
class CBMAWorkflow(_Workflow):
    """Fit, correct and diagnose one coordinate set.

    Parameters
    ----------
    estimator : ALE or "ale", optional
        Default: ``ALE()``, whose p-values come from the approximate null.
    %(workflow_steps)s
    """

    _estimators = {"ale": ALE}
    _estimator_type = ALE

    def fit(self, cset: CoordinateSet) -> MetaResult:
        """Run the workflow on a :class:`~dmeta.CoordinateSet`; returns the final result."""
        return self._run(cset)

    def target_images(self, result, montecarlo):
        parts = ("_desc-mass", "_corr-") if montecarlo else ("_corr-",)
        return [n for n in result.maps.data_vars
                if n.startswith("z_") and all(p in n for p in parts)]


@fill_doc
class PairwiseCBMAWorkflow(_Workflow):
    """Fit, correct and diagnose a comparison of two coordinate sets (ALE subtraction).

    The difference is group 1 minus group 2: a diagnostic's positive tail is about group 1's
    analyses, its negative tail (``display_second_group=True``) about group 2's.

    Parameters
    ----------
    estimator : ALESubtraction or "alesubtraction", optional
        Default: ``ALESubtraction()``.
    %(workflow_steps)s
    """

    _estimators = {"alesubtraction": ALESubtraction}
    _estimator_type = ALESubtraction

    def __init__(self, estimator: ALESubtraction | str = "alesubtraction",
                 corrector: FWECorrector | FDRCorrector | str | None = None,
                 diagnostics: Any = None, voxel_thresh: float = 1.65,
                 cluster_threshold: int = 10, output_dir: str | os.PathLike | None = None):
        super().__init__(estimator, corrector, diagnostics, voxel_thresh, cluster_threshold,
                         output_dir)

    def fit(self, cset1: CoordinateSet, cset2: CoordinateSet) -> MetaResult:
        """Run the workflow on two coordinate sets (group 1 minus group 2)."""
        return self._run(cset1, cset2)

    def target_images(self, result, montecarlo):
        names = [n for n in result.maps.data_vars if n.startswith("z_") and "_corr-" in n]
        if not montecarlo:
            return [n for n in names if "_desc-" in n]
        return ([n for n in names if _PAIRWISE_MASS in n]
                or [n for n in names if _PAIRWISE_VOXEL in n])


def _resolve(obj, options, types, what):
    if obj is None:
        obj = next(iter(options))
    if isinstance(obj, str):
        if obj not in options:
            raise InputError(f"{what} {obj!r} is not one of {', '.join(options)}")
        return options[obj]()
    if not isinstance(obj, types):
        names = types.__name__ if isinstance(types, type) else ", ".join(t.__name__ for t in types)
        raise InputError(f"{what} must be {names} or one of {', '.join(options)}, "
                         f"not {type(obj).__name__}")
    return obj


def _resolve_diagnostic(diagnostic):
    if isinstance(diagnostic, str):
        classes = _diagnostic_classes()
        if diagnostic not in classes:
            raise InputError(f"diagnostic {diagnostic!r} is not one of {', '.join(classes)}")
        return classes[diagnostic]()
    if not callable(getattr(diagnostic, "transform", None)):
        raise InputError(f"a diagnostic needs a transform(result) method; got "
                         f"{type(diagnostic).__name__}")
    return diagnostic
