"""CBMA workflows: estimator -> corrector -> diagnostics on the corrected maps, NiMARE's way;
and the contrast gated by the groups' corrected main effects.

Diagnostics are called generically (a copy of each, with ``target_image`` set, then
``.transform(result)``), on the corrected z maps NiMARE's workflows diagnose.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dmeta.ale import ALE
from dmeta.base import DmetaBase, param_defaults
from dmeta.coordinates import CoordinateSet
from dmeta.correct import FDRCorrector, FWECorrector
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.results import MetaResult
from dmeta.subtraction import ALESubtraction
from dmeta.validation import check_p

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


@fill_doc
class ContrastWorkflow(DmetaBase):
    """Main effects corrected and thresholded, then used to gate the contrast between groups.

    Each group's main effect is fitted, corrected and thresholded at ``alpha``; the two
    thresholded z maps are the subtraction's directional inference maps (group 1 > group 2
    tested only where group 1's main effect survives, group 2 > group 1 only where group
    2's does), and the contrast's p is thresholded at ``alpha`` too (Laird et al., 2005;
    as NiMARE 0.22.1's ``ContrastWorkflow``, after JALE).

    Maps added to the subtraction's: ``z_desc-group1MainEffect``, ``z_desc-group2MainEffect``,
    ``z_desc-conjunction`` (their voxelwise minimum), and ``p_/z_/logp_desc-contrast`` (the
    gated contrast where p <= ``alpha``; p = 1, z = logp = 0 elsewhere); table
    ``contrast_tab-metadata``.

    Parameters
    ----------
    main_estimator : ALE or "ale", optional
        Default: ``ALE()``.
    pairwise_estimator : ALESubtraction or "alesubtraction", optional
        Default: ``ALESubtraction()``.
    corrector : FWECorrector, FDRCorrector, "fdr" or "montecarlo", optional
        Corrects the main effects. Default: ``FDRCorrector(method="indep")``.
    alpha : float
        Threshold of the corrected main effects and of the contrast's p.
    output_dir : str or os.PathLike, optional
        Where to write the maps (NIfTI) and ``boilerplate.txt``.
    """

    def __init__(self, main_estimator: ALE | str = "ale",
                 pairwise_estimator: ALESubtraction | str = "alesubtraction",
                 corrector: FWECorrector | FDRCorrector | str | None = None,
                 alpha: float = 0.05, output_dir: str | os.PathLike | None = None):
        self.main_estimator = main_estimator
        self.pairwise_estimator = pairwise_estimator
        self.corrector = corrector
        self.alpha = alpha
        self.output_dir = output_dir
        self._steps()

    def _steps(self):
        check_p("alpha", self.alpha)
        main = _resolve(self.main_estimator, {"ale": ALE}, ALE, "main_estimator")
        pairwise = _resolve(self.pairwise_estimator, {"alesubtraction": ALESubtraction},
                            ALESubtraction, "pairwise_estimator")
        corrector = (FDRCorrector(method="indep") if self.corrector is None else
                     _resolve(self.corrector, {"fdr": FDRCorrector, "montecarlo": FWECorrector},
                              (FDRCorrector, FWECorrector), "corrector"))
        return main, pairwise, corrector

    def fit(self, cset1: CoordinateSet, cset2: CoordinateSet,
            result1: MetaResult | None = None, result2: MetaResult | None = None,
            corr_result1: MetaResult | None = None,
            corr_result2: MetaResult | None = None) -> MetaResult:
        """Run the workflow; fitted (``result1/2``) or corrected (``corr_result1/2``) main
        effects already at hand are used instead of being computed again."""
        main, pairwise, corrector = self._steps()
        gates, corrected = [], []
        for cset, fitted, corr in ((cset1, result1, corr_result1),
                                   (cset2, result2, corr_result2)):
            if corr is None:
                corr = corrector.transform(main.fit(cset) if fitted is None else fitted)
            corrected.append(corr)
            gates.append(thresholded_main_effect(corr, self.alpha))
        result = pairwise.fit(cset1, cset2, inference_map1=gates[0], inference_map2=gates[1])
        p = result.get_map(f"p_{_CONTRAST}", "array")
        kept = p <= self.alpha
        z = np.where(kept, result.get_map(f"z_{_CONTRAST}", "array"), 0).astype(np.float32)
        kept &= z != 0
        result.add_maps({
            "z_desc-group1MainEffect": gates[0],
            "z_desc-group2MainEffect": gates[1],
            "z_desc-conjunction": np.minimum(gates[0], gates[1]),
            "p_desc-contrast": np.where(kept, p, 1).astype(np.float32),
            "z_desc-contrast": np.where(kept, z, 0).astype(np.float32),
            "logp_desc-contrast": np.where(
                kept, result.get_map(f"logp_{_CONTRAST}", "array"), 0).astype(np.float32),
        })
        result.add_tables({"contrast_tab-metadata": pd.DataFrame([{
            "alpha": self.alpha, "main_estimator": type(main).__name__,
            "pairwise_estimator": type(pairwise).__name__,
            "corrector": type(corrector).__name__}])})
        result.description = " ".join([
            f"Group 1 main effect: {corrected[0].description}",
            f"Group 2 main effect: {corrected[1].description}",
            f"Contrast: {result.description}",
            f"The main effects were corrected with {type(corrector).__name__} and thresholded "
            f"at alpha = {self.alpha}, and used as directional inference masks for the "
            "contrast: group 1 > group 2 was tested only where group 1's main effect "
            "survived, group 2 > group 1 only where group 2's did (Laird et al., 2005). "
            f"The contrast's p-values were thresholded at the same alpha; the conjunction "
            "is the voxelwise minimum of the two thresholded main effects.",
        ])
        if self.output_dir is not None:
            out = Path(self.output_dir)
            result.save_nifti(out)
            (out / "boilerplate.txt").write_text(result.description)
        return result


_CONTRAST = "desc-group1MinusGroup2"


def thresholded_main_effect(corrected: MetaResult, alpha: float) -> np.ndarray:
    """A corrected main effect's z where it survives ``alpha``, 0 elsewhere (float32).

    The corrected map is chosen as NiMARE's workflow chooses it: cluster size before
    cluster mass before voxel level; Monte Carlo FWE before predictive FWE before FDR
    (BH, then BY); each z map thresholded by its p twin (p <= alpha) or, lacking one, its
    logp twin (logp >= -log10 alpha).
    """
    candidates = []
    for name in corrected.maps.data_vars:
        if not (name.startswith("z_") and "_corr-" in name):
            continue
        for kind in ("p", "logp"):
            twin = f"{kind}_{name[2:]}"
            if twin in corrected.maps:
                candidates.append((_map_priority(twin), name, twin, kind))
                break
    if not candidates:
        raise InputError("the main effect has no corrected z map with a p or logp twin; "
                         f"its maps are {', '.join(sorted(corrected.maps.data_vars))}")
    _, z_name, twin, kind = min(candidates)
    z, values = corrected.get_map(z_name, "array"), corrected.get_map(twin, "array")
    keep = values <= alpha if kind == "p" else values >= -np.log10(alpha)
    return np.where(keep, z, 0).astype(np.float32)


_SCOPES = ("ize_level-cluster", "ass_level-cluster", "level-voxel")
_METHODS = ("_corr-FWE_method-montecarlo", "_corr-FWE_method-predictive",
            "_corr-FDR_method-indep", "_corr-FDR_method-negcorr")


def _map_priority(name):
    scope = next((i for i, s in enumerate(_SCOPES) if s in name), len(_SCOPES))
    method = next((i for i, m in enumerate(_METHODS) if m in name), len(_METHODS))
    return scope, method, name
