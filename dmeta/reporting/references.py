"""Full references for the citations a result's methods text makes.

Methods texts cite in author-year form ("Eickhoff et al., 2009, 2012") or name a procedure
("Benjamini-Hochberg"); each reference below lists the patterns that cite it, so the report
lists exactly the works its methods text relies on, in the order of this list.
"""

import re

REFERENCES = [
    (("Turkeltaub et al\\.,[^)]*2002",),
     ("Turkeltaub, P. E., Eden, G. F., Jones, K. M., & Zeffiro, T. A. (2002). Meta-analysis "
     "of the functional neuroanatomy of single-word reading: method and validation. "
     "NeuroImage, 16(3), 765-780.")),
    (("Eickhoff et al\\.,[^)]*2009",),
     ("Eickhoff, S. B., Laird, A. R., Grefkes, C., Wang, L. E., Zilles, K., & Fox, P. T. "
     "(2009). Coordinate-based activation likelihood estimation meta-analysis of "
     "neuroimaging data: a random-effects approach based on empirical estimates of spatial "
     "uncertainty. Human Brain Mapping, 30(9), 2907-2926.")),
    (("Eickhoff et al\\.,[^)]*2012",),
     ("Eickhoff, S. B., Bzdok, D., Laird, A. R., Kurth, F., & Fox, P. T. (2012). Activation "
     "likelihood estimation meta-analysis revisited. NeuroImage, 59(3), 2349-2361.")),
    (("Laird et al\\.,[^)]*2005",),
     ("Laird, A. R., Fox, P. M., Price, C. J., Glahn, D. C., Uecker, A. M., Lancaster, J. L., "
     "Turkeltaub, P. E., Kochunov, P., & Fox, P. T. (2005). ALE meta-analysis: controlling "
     "the false discovery rate and performing statistical contrasts. Human Brain Mapping, "
     "25(1), 155-164.")),
    (("Eickhoff et al\\.,[^)]*2016", "Monte Carlo"),
     ("Eickhoff, S. B., Nichols, T. E., Laird, A. R., Hoffstaedter, F., Amunts, K., Fox, P. "
     "T., Bzdok, D., & Eickhoff, C. R. (2016). Behavior, sensitivity, and power of "
     "activation likelihood estimation characterized by massive empirical simulation. "
     "NeuroImage, 137, 70-85.")),
    (("Langner et al\\.,[^)]*2014",),
     ("Langner, R., Rottschy, C., Laird, A. R., Fox, P. T., & Eickhoff, S. B. (2014). "
     "Meta-analytic connectivity modeling revisited: controlling for activation base rates. "
     "NeuroImage, 99, 559-570.")),
    (("Frahm et al\\.[^)]*2025",),
     ("Frahm, L., Patil, K. R., Satterthwaite, T. D., Fox, P. T., Eickhoff, S. B., & Langner, "
     "R. (2025). Predictive modeling of significance thresholding in activation likelihood "
     "estimation meta-analysis. Imaging Neuroscience, 3, imag_a_00423.")),
    (("Nichols et al\\.,[^)]*2005", "[Cc]onjunction"),
     ("Nichols, T., Brett, M., Andersson, J., Wager, T., & Poline, J.-B. (2005). Valid "
     "conjunction inference with the minimum statistic. NeuroImage, 25(3), 653-660.")),
    (("Acar et al\\.,[^)]*2018",),
     ("Acar, F., Seurinck, R., Eickhoff, S. B., & Moerkerke, B. (2018). Assessing robustness "
     "against potential publication bias in Activation Likelihood Estimation (ALE) "
     "meta-analyses for fMRI. PLoS ONE, 13(11), e0208177.")),
    (("Benjamini-Hochberg", "Benjamini & Hochberg"),
     ("Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery rate: a "
     "practical and powerful approach to multiple testing. Journal of the Royal Statistical "
     "Society: Series B, 57(1), 289-300.")),
    (("Benjamini-Yekutieli", "Benjamini & Yekutieli"),
     ("Benjamini, Y., & Yekutieli, D. (2001). The control of the false discovery rate in "
     "multiple testing under dependency. The Annals of Statistics, 29(4), 1165-1188.")),
]

#: Cited in every report: dmeta reproduces NiMARE's methods and names.
NIMARE = ("Salo, T., Yarkoni, T., Nichols, T. E., Poline, J.-B., Kent, J. D., Gorgolewski, "
          "K. J., et al. (2023). NiMARE: Neuroimaging Meta-Analysis Research Environment. "
          "Aperture Neuro, 3.")


def cited(text):
    """References whose patterns occur in ``text``, then NiMARE's."""
    found = [ref for patterns, ref in REFERENCES
             if any(re.search(pattern, text) for pattern in patterns)]
    return [*found, NIMARE]
