"""Training throughput of the backbones: forward + backward images/s, achieved TFLOP/s and (on CUDA) MFU.

    python benchmarks/backbone_throughput.py --presets dit:S/2,dit:B/2,dit:XL/2 --batch-sizes 64,128 \
        --precisions fp32,bf16-mixed --compile off,on --steps 20 --device cuda

FLOPs are counted with torch.utils.flop_counter on the meta device for one measured forward + backward
(about 3x the forward). On CUDA the peak bf16 matrix-multiply rate is measured in the same run and the
model FLOPs utilisation is MFU = achieved TFLOP/s / that peak (for every precision, so fp32 rows show
how far they are from what bf16 could reach). A step is: forward (under autocast for bf16-mixed),
MSE loss against a fixed target in float32, backward, gradients set to None. No optimiser step.
"""
from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from lit_diffusion.backbones import DIT_PRESETS, UNET_PRESETS, DiT, UNet

PRECISIONS = ("fp32", "bf16-mixed", "bf16-true")
FAMILIES = {"dit": (DiT, DIT_PRESETS), "unet": (UNet, UNET_PRESETS)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def csv(kind):
        return lambda text: [kind(item) for item in text.split(",") if item]

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", type=csv(str), default=["dit:debug", "dit:S/2"],
                        help="comma list of family:preset, e.g. dit:S/2,unet:ddpm-cifar10")
    parser.add_argument("--batch-sizes", type=csv(int), default=[8])
    parser.add_argument("--precisions", type=csv(str), default=["fp32", "bf16-mixed"], help=f"from {PRECISIONS}")
    parser.add_argument("--compile", type=csv(str), default=["off"], help="off, on, or off,on")
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode, e.g. max-autotune")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dit-shape", type=csv(int), default=[4, 32, 32], help="C,H,W (default: SD-VAE latents)")
    parser.add_argument("--dit-classes", type=int, default=1000)
    parser.add_argument("--unet-shape", type=csv(int), default=[3, 32, 32], help="C,H,W (default: CIFAR-10)")
    parser.add_argument("--unet-classes", type=int, default=0)
    parser.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                        help="U-Net memory format; auto = on for CUDA")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (0: torch's default)")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls for the fp32 rows on CUDA")
    args = parser.parse_args(argv)
    for spec in args.presets:
        family, _, name = spec.partition(":")
        if family not in FAMILIES or name not in FAMILIES[family][1]:
            allowed = [f"{f}:{n}" for f, (_, table) in FAMILIES.items() for n in table]
            parser.error(f"unknown preset {spec!r}; choose from {allowed}")
    bad = [p for p in args.precisions if p not in PRECISIONS] + [c for c in args.compile if c not in ("off", "on")]
    if bad:
        parser.error(f"unknown precision/compile values {bad}; precisions {PRECISIONS}, compile off/on")
    return args


def build(spec: str, args: argparse.Namespace, device, checkpointing: bool) -> tuple[torch.nn.Module, list[int], int]:
    family, _, name = spec.partition(":")
    cls, _ = FAMILIES[family]
    shape, classes = (args.dit_shape, args.dit_classes) if family == "dit" else (args.unet_shape, args.unet_classes)
    kwargs = {"in_channels": shape[0], "num_classes": classes, "activation_checkpointing": checkpointing}
    if family == "dit":
        kwargs["input_size"] = tuple(shape[1:])
    with torch.device(device):
        return cls.from_preset(name, **kwargs), shape, classes


def make_batch(batch: int, shape: list[int], classes: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    x = torch.randn(batch, *shape, device=device)
    t = torch.rand(batch, device=device)
    cond = torch.randint(0, classes + 1, (batch,), device=device) if classes > 0 else None
    return x, t, cond, torch.randn_like(x)


def train_step(model, x, t, cond, target, autocast_dtype):
    ctx = torch.autocast(x.device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    with ctx:
        out = model(x, t, cond)  # (B, C, H, W)
    loss = (out.float() - target.float()).square().mean()
    loss.backward()
    return loss


def count_flops(spec: str, args: argparse.Namespace, batch: int) -> tuple[int, int, int]:
    """(forward flops, forward + backward flops, parameters) for one step of `batch`, counted on the meta device.

    Model FLOPs: counted without activation checkpointing, so recomputation does not inflate TFLOP/s or MFU.
    """
    model, shape, classes = build(spec, args, "meta", checkpointing=False)
    x, t, cond, target = make_batch(batch, shape, classes, torch.device("meta"))
    with FlopCounterMode(display=False) as forward_counter:
        model(x, t, cond)
    with FlopCounterMode(display=False) as step_counter:
        train_step(model, x, t, cond, target, None)
    params = sum(p.numel() for p in model.parameters())
    return forward_counter.get_total_flops(), step_counter.get_total_flops(), params


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_bf16_matmul_tflops(device: torch.device, n: int = 8192, repeats: int = 20) -> float:
    """Best-of-5 rate of an n x n x n bf16 matrix product on this device, in TFLOP/s."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12)
    return best


def measure(spec, batch, precision, compiled, args, device) -> dict:
    torch.manual_seed(0)
    model, shape, classes = build(spec, args, device, checkpointing=args.activation_checkpointing)
    if precision == "bf16-true":
        model = model.to(torch.bfloat16)
    x, t, cond, target = make_batch(batch, shape, classes, device)
    if precision == "bf16-true":
        x = x.to(torch.bfloat16)
    channels_last = args.channels_last == "on" or (args.channels_last == "auto" and device.type == "cuda")
    if spec.startswith("unet:") and channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    runner = torch.compile(model, mode=args.compile_mode) if compiled else model
    autocast_dtype = torch.bfloat16 if precision == "bf16-mixed" else None
    start = time.perf_counter()
    for _ in range(args.warmup):
        train_step(runner, x, t, cond, target, autocast_dtype)
        model.zero_grad(set_to_none=True)
    synchronize(device)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step(runner, x, t, cond, target, autocast_dtype)
        model.zero_grad(set_to_none=True)
    synchronize(device)
    return {"step_s": (time.perf_counter() - start) / args.steps, "warmup_s": warmup_s}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    print("# command: python " + shlex.join(sys.argv if argv is None else [sys.argv[0], *argv]))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# device: {name}; torch {torch.__version__}")
    peak = peak_bf16_matmul_tflops(device) if device.type == "cuda" else None
    if peak is not None:
        print(f"# measured peak bf16 matmul: {peak:.1f} TFLOP/s (8192^3, best of 5)")
    header = ("preset", "input", "params", "batch", "precision", "compile", "img/s", "ms/step",
              "fwd GFLOP/img", "train GFLOP/img", "TFLOP/s", "MFU")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for spec in args.presets:
        shape = args.dit_shape if spec.startswith("dit:") else args.unet_shape
        for batch in args.batch_sizes:
            fwd_flops, step_flops, params = count_flops(spec, args, batch)
            for precision in args.precisions:
                for compile_flag in args.compile:
                    try:
                        result = measure(spec, batch, precision, compile_flag == "on", args, device)
                    except torch.cuda.OutOfMemoryError:
                        result = None
                    finally:
                        torch._dynamo.reset()
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                    cells = [spec, "x".join(map(str, shape)), f"{params / 1e6:.1f}M", str(batch), precision, compile_flag]
                    if result is None:
                        cells += ["OOM"] + ["-"] * 5
                    else:
                        tflops = step_flops / result["step_s"] / 1e12
                        cells += [
                            f"{batch / result['step_s']:.1f}",
                            f"{1e3 * result['step_s']:.1f}",
                            f"{fwd_flops / batch / 1e9:.3g}",
                            f"{step_flops / batch / 1e9:.3g}",
                            f"{tflops:.3g}",
                            f"{100 * tflops / peak:.1f}%" if peak else "n/a",
                        ]
                    print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
