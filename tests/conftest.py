import os

from hypothesis import settings

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# no per-example deadline: on a shared 2-core machine running two test processes, a slow example is load, not a fault
settings.register_profile("shared", deadline=None)
settings.load_profile("shared")
