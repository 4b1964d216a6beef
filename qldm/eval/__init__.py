"""Evaluation of generated images: FID (labelled by its features), radial spectra, prompted-attribute
accuracy, and the side-by-side quantum-vs-classical report of ``qldm evaluate``."""

from qldm.eval.attributes import AttributeResult, hair_colour_accuracy
from qldm.eval.features import (
    FeatureExtractor,
    HandcraftedFeatures,
    InceptionFeatures,
    WeightsNotFoundError,
    make_extractor,
)
from qldm.eval.fid import (
    FIDResult,
    add_noise,
    compute_fid,
    feature_statistics,
    frechet_distance,
    gaussian_blur,
)
from qldm.eval.spectrum import high_frequency_ratio, plot_spectra, radial_power_spectrum

__all__ = [
    "AttributeResult",
    "hair_colour_accuracy",
    "FeatureExtractor",
    "HandcraftedFeatures",
    "InceptionFeatures",
    "WeightsNotFoundError",
    "make_extractor",
    "FIDResult",
    "add_noise",
    "compute_fid",
    "feature_statistics",
    "frechet_distance",
    "gaussian_blur",
    "high_frequency_ratio",
    "plot_spectra",
    "radial_power_spectrum",
]
