"""Where OpenVINO's time goes: milliseconds per inference by layer type and implementation, from OpenVINO's own
per-kernel timers, for one model at each precision (compiled as the OpenVINO backend prepares a run: converted,
quantised for int8, static shapes, the threads given).

    .venv/bin/python benchmarks/openvino_kernel_times.py --model bert --precisions fp32 bf16 --batch 8 --threads 1
    .venv/bin/python benchmarks/openvino_kernel_times.py --model outputs/checkpoints/convnext-c --batch 8

A model folder is loaded as the zoo loads local folders (its config, random weights where it has none). The timers
run inside the kernels, so their sum is a little below the wall time of a call; compare the precisions of one run.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PRECISIONS = ("fp32", "bf16", "fp16", "int8")  # kit.backends.base.PRECISIONS, checked before torch is imported


def main() -> None:
    """Print the kernel times of each precision, largest first."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a zoo model or a local model folder")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--top", type=int, default=12, help="kernels shown per precision")
    args = parser.parse_args()
    for name in ("batch", "threads", "calls", "top"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")

    import torch

    from kit import zoo
    from kit.backends import get_backend
    from kit.backends import openvino_backend as ovb
    from kit.errors import ConfigError

    backend = get_backend("openvino")
    for precision in args.precisions:
        ok, why = backend.supports(precision, "inference")
        if not ok:
            parser.error(f"precision {precision!r} cannot run on OpenVINO here: {why}")
    torch.set_num_threads(args.threads)
    try:
        loaded = zoo.load_model(args.model, args.size)
    except ConfigError as exc:
        parser.error(str(exc))
    inputs = loaded.make_inputs(args.batch, args.seq_len)
    arrays = ovb.numpy_inputs(inputs)
    converted, _ = ovb.convert(loaded.model, inputs)
    for precision in args.precisions:
        ov_model = ovb.quantize_int8(converted, loaded, args.batch)[0] if precision == "int8" else converted.clone()
        ovb.make_static(ov_model, arrays)
        compiled = ovb.compile_model(ov_model, "CPU", precision, args.threads, profiling=True)
        times = ovb.kernel_times(compiled, arrays, calls=args.calls)
        total = sum(times.values())
        print(f"{args.model} {precision}, batch {args.batch}, {args.threads} thread(s): "
              f"{total * 1e3:.3f} ms in kernels")
        for (layer, implementation), seconds in list(times.items())[:args.top]:
            print(f"  {layer:22s} {implementation:34s} {seconds * 1e3:8.3f} ms  {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
