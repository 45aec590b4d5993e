"""ALE Gaussian kernels: width from sample size (Eickhoff et al., 2009) and the 3-D kernel.

The kernel is built the way NiMARE builds it (a unit impulse in a 31-voxel cube smoothed by
``scipy.ndimage.gaussian_filter`` and cropped where it falls below machine epsilon), so
modeled-activation values agree with NiMARE to floating-point precision. Values pass through
float32 because NiMARE stores them so, and the approximate null bins them at 1e-5 resolution.
"""

import numpy as np
from scipy import ndimage

#: Spatial uncertainty between templates and between subjects, from Eickhoff et al. (2009):
#: 5.7 mm and 11.6 mm Euclidean distance, converted to a Gaussian FWHM.
_TEMPLATE_FWHM = 5.7 / (2.0 * np.sqrt(2.0 / np.pi)) * np.sqrt(8.0 * np.log(2.0))
_SUBJECT_FWHM = 11.6 / (2.0 * np.sqrt(2.0 / np.pi)) * np.sqrt(8.0 * np.log(2.0))

_CUBE = 31


def fwhm_from_sample_size(sample_size):
    """Kernel FWHM in mm for an experiment with ``sample_size`` subjects."""
    subjects = _SUBJECT_FWHM / np.sqrt(np.asarray(sample_size, dtype=float))
    return np.sqrt(subjects**2 + _TEMPLATE_FWHM**2)


def ale_kernel(fwhm, zooms):
    """The 3-D ALE kernel (a cube of odd side centred on its middle voxel).

    Parameters
    ----------
    fwhm : float
        Full width at half maximum in mm.
    zooms : sequence of float
        Voxel sizes in mm.

    Notes
    -----
    NiMARE converts the FWHM to a voxel sigma as ``fwhm / sqrt(prod(zooms)) * sqrt(2) /
    (2 sqrt(2 ln 2))``; for 2 mm isotropic voxels this is the textbook ``fwhm / 2 / sqrt(8 ln 2)``.
    It is kept as is, so maps on other grids also agree with NiMARE's; the voxel sizes are
    taken in float32, as the NIfTI header stores them, so kernels agree to the last bit.
    """
    fwhm_vox = fwhm / np.sqrt(np.prod(np.asarray(zooms, dtype=np.float32)))
    sigma_vox = fwhm_vox * np.sqrt(2.0) / (np.sqrt(2.0 * np.log(2.0)) * 2.0)
    impulse = np.zeros((_CUBE,) * 3)
    mid = _CUBE // 2
    impulse[mid, mid, mid] = 1.0
    kernel = ndimage.gaussian_filter(impulse, sigma_vox, mode="constant")
    support = np.flatnonzero(kernel[:, mid, mid] > np.spacing(1))
    lo, hi = support.min(), support.max() + 1
    kernel = kernel[lo:hi, lo:hi, lo:hi]
    return kernel.astype(np.float32).astype(np.float64)


class KernelBank:
    """The distinct kernels of an analysis set and which analysis uses which.

    Analyses with the same width share one kernel, so a 500-analysis dataset with a few
    dozen distinct sample sizes builds a few dozen kernels.

    Parameters
    ----------
    fwhms : array of float
        Kernel FWHM (mm) per analysis.
    zooms : sequence of float
        Voxel sizes of the analysis space.
    fixed : bool
        Whether the FWHM was given by the user rather than derived from sample sizes.
    """

    def __init__(self, fwhms, zooms, fixed=False):
        self.fwhms = np.asarray(fwhms, dtype=float)
        unique, self.index = np.unique(self.fwhms, return_inverse=True)
        # NiMARE divides a user-given FWHM, a plain float, by float32 voxel sizes, which
        # NumPy evaluates in float32; FWHMs derived from sample sizes are float64.
        cast = float if fixed else np.float64
        self.kernels = [ale_kernel(cast(f), zooms) for f in unique]

    @property
    def radius(self):
        """Half side of the largest kernel cube, in voxels."""
        return max(k.shape[0] // 2 for k in self.kernels)

    def stack(self):
        """All kernels zero-padded to one cube, shape (n_kernels, side, side, side)."""
        side = 2 * self.radius + 1
        out = np.zeros((len(self.kernels), side, side, side))
        for n, kernel in enumerate(self.kernels):
            pad = (side - kernel.shape[0]) // 2
            sl = slice(pad, pad + kernel.shape[0])
            out[n, sl, sl, sl] = kernel
        return out
