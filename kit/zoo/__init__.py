"""The model zoo: families built from explicit configs with random weights, or local HuggingFace folders."""

from kit.zoo.loading import FAMILIES, SIZES, load_model, resolve_model, validate_size
from kit.zoo.model import LoadedModel, flops_per_sample

__all__ = ["FAMILIES", "SIZES", "LoadedModel", "flops_per_sample", "load_model", "resolve_model", "validate_size"]
