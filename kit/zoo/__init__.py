"""The model zoo: families built from explicit configs with random weights, or local HuggingFace folders."""

from kit.zoo.loading import FAMILIES, SIZES, load_model, resolve_model, validate_size
from kit.zoo.model import PROFILE_KEYS, LoadedModel, flops_per_sample, forward_profile

__all__ = ["FAMILIES", "PROFILE_KEYS", "SIZES", "LoadedModel", "flops_per_sample", "forward_profile", "load_model",
           "resolve_model", "validate_size"]
