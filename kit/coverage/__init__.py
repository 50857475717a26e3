"""Every architecture transformers knows, built tiny from its config class and measured per platform: the
compatibility matrix (`benchkit coverage`, notebook 08_coverage)."""

from kit.coverage.architectures import MODALITIES, Architecture, all_architectures, select_architectures
from kit.coverage.run import CoverageSpec, run_coverage, spec_from_parameters
from kit.coverage.shrink import shrink_config

__all__ = ["MODALITIES", "Architecture", "CoverageSpec", "all_architectures", "run_coverage", "select_architectures",
           "shrink_config", "spec_from_parameters"]
