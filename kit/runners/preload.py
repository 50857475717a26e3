"""Imported once by the fork server (kit.runners.isolation), so that every child starts with torch, transformers and
the measuring code already imported instead of paying several seconds of imports per configuration."""

import gc
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read by huggingface_hub at import time

import torch  # noqa: E402,F401
import transformers  # noqa: E402,F401
import transformers.modeling_utils  # noqa: E402,F401

import kit.runners.inference  # noqa: E402,F401
import kit.runners.worker  # noqa: E402,F401

# Children are forked from here: frozen objects are left out of their garbage collections, so a collection in a child
# does not write to (and so copy) every page of these imports while it is being timed.
gc.freeze()
