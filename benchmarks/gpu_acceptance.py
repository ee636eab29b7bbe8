"""One command for the day a GPU is lent: the scale path end to end, in under 9 minutes on one H200.

    python benchmarks/gpu_acceptance.py --out acceptance/          # the real thing, on CUDA
    python benchmarks/gpu_acceptance.py --tiny --out /tmp/acc      # CI on the CPU: same code, toy sizes

Sections (each timed, each failure recorded, not fatal; JSON and a markdown table in --out):
  peak        bf16 GEMM FLOP/s timed here: the MFU denominator
  train       DiT-S/2, B/2, XL/2 (latents 4x32x32) and the DDPM U-Net (3x32x32): bf16 autocast, torch.compile,
              fused AdamW, EMA; step time, images/s, TFLOP/s, MFU (goal >= 50% for B/2 and XL/2), peak memory
  no_sync     steady-state steps under torch.cuda.set_sync_debug_mode("error") through DiffusionModule's hooks
  sharded     FSDP2 (lit_diffusion.distributed.fsdp2) on the one GPU, and DeepSpeed ZeRO-2/3 through
              `lit-diffusion fit` (DiT-S widths, bf16) when deepspeed is installed: step time and peak memory
              (--tiny: the same fit path with Lightning's default strategy, which the CPU allows, and with the
              deepspeed_stage_2_cpu / _3_cpu presets when deepspeed is installed)
  memory      per-rank bytes of parameters, gradients, optimiser state and EMA under DDP, FSDP2, ZeRO-2, ZeRO-3
              (DiT-S widths on 2 CPU ranks, from the tensors each rank holds) next to the analytic bytes:
              benchmarks/strategy_memory.py, its table printed
  resume      bf16: k steps, save, resume, k more == 2k uninterrupted (bitwise?, max difference)
  sampling    images/s of Euler sampling at NFE 1, 8, 32 (DiT-B/2, bf16)
  loader      data loader wait per step with the real shard pipeline feeding a DiT-S/2 step
  lightning   benchmarks/lightning_vs_bare.py on this device (ratio goal <= 1.02)
The full run has not been verified on a GPU; --tiny runs in CI (tests/backbones/test_benchmark_smoke.py)."""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from lit_diffusion.backbones import DiT, UNet  # noqa: E402
from lit_diffusion.objectives.flow_matching import FlowMatching  # noqa: E402
from lit_diffusion.training.ema import EMA  # noqa: E402

FULL = {"dit": [("S/2", 256), ("B/2", 256), ("XL/2", 128)], "unet": ("ddpm-cifar10", 128), "shape": (4, 32, 32),
        "steps": 20, "warmup": 5, "nfe": (1, 8, 32), "sample_batch": 256}
TINY = {"dit": [("debug", 4)], "unet": ("debug", 4), "shape": (4, 8, 8), "steps": 2, "warmup": 1, "nfe": (1, 2),
        "sample_batch": 4}


class Bench:
    def __init__(self, tiny: bool):
        self.tiny, self.size = tiny, TINY if tiny else FULL
        self.device = torch.device("cpu" if tiny or not torch.cuda.is_available() else "cuda")
        self.cuda = self.device.type == "cuda"
        self.results: dict[str, object] = {}
        self.peak: float | None = None

    def digits(self, folder: Path) -> Path:
        """The embedded digits as shards under `folder` (16x16 in --tiny, else 32x32), through the real data CLI."""
        from lit_diffusion.cli import main as cli_main

        shards = folder / "digits"
        assert cli_main(["data", "build", "digits", "--out", str(shards), "--resolution", "16" if self.tiny else "32",
                         "--no-progress", "--workers", "0"]) == 0
        return shards

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else contextlib.nullcontext()

    def run(self, name, fn):
        start = time.perf_counter()
        try:
            self.results[name] = fn()
        except Exception as error:  # one failed section must not hide the others
            self.results[name] = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()[-2000:]}
        print(f"[{time.perf_counter() - start:6.1f} s] {name}: {_short(self.results[name])}", flush=True)

    # -- sections ------------------------------------------------------------------------------------
    def measure_peak(self):
        if not self.cuda:
            return {"skipped": "no CUDA: MFU is not computed"}
        from lit_diffusion.distributed.throughput import measure_bf16_peak

        self.peak = measure_bf16_peak(self.device)
        return {"bf16_gemm_tflops": self.peak / 1e12}

    def backbone(self, family, preset):
        if family == "dit":
            c, h, _ = self.size["shape"]
            return DiT.from_preset(preset, in_channels=c, input_size=h, num_classes=1000), self.size["shape"]
        return UNet.from_preset(preset), (3, 32, 32) if not self.tiny else (3, 16, 16)

    def train_steps(self, net, shape, batch, steps, compile=True, ema=None):
        """Time `steps` steps of flow matching + fused AdamW + EMA; FLOPs counted on one eager step."""
        net = net.to(self.device)
        objective, ema = FlowMatching(), ema or EMA(net, decay=0.999)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=self.cuda or None)
        x0 = torch.randn(batch, *shape, device=self.device)
        cond = torch.randint(0, 1000, (batch,), device=self.device) if isinstance(net, DiT) else None
        g = torch.Generator(device=self.device).manual_seed(0)

        def step(model):
            with self.autocast():
                loss = objective.loss(model, x0, cond, generator=g).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            ema.update(net)

        with FlopCounterMode(display=False) as counter:
            with self.autocast():
                loss = objective.loss(net, x0, cond, generator=g).mean()
            loss.backward()
        opt.zero_grad(set_to_none=True)
        flops = counter.get_total_flops()
        model = torch.compile(net) if compile and self.cuda else net
        for _ in range(self.size["warmup"]):
            step(model)
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(steps):
            step(model)
        self.sync()
        seconds = (time.perf_counter() - start) / steps
        out = {"batch": batch, "ms_per_step": 1e3 * seconds, "images_per_s": batch / seconds,
               "tflops": flops / seconds / 1e12}
        if self.peak:
            out["mfu"] = flops / seconds / self.peak
        if self.cuda:
            out["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
        return out

    def train(self):
        rows = {}
        for preset, batch in self.size["dit"]:
            rows[f"DiT-{preset}"] = self.train_steps(*self.backbone("dit", preset), batch, self.size["steps"])
        preset, batch = self.size["unet"]
        rows[f"UNet-{preset}"] = self.train_steps(*self.backbone("unet", preset), batch, self.size["steps"])
        return rows

    def no_sync(self):
        """DiffusionModule's step hooks, driven by hand, under the CUDA sync detector (CPU: the seam count)."""
        from lit_diffusion.training import module as module_file

        net, shape = self.backbone("dit", self.size["dit"][0][0])
        x0 = torch.randn(self.size["dit"][0][1], *shape, device=self.device)
        module = module_file.DiffusionModule(net, FlowMatching()).to(self.device)
        opt = torch.optim.AdamW(module.backbone.parameters(), lr=1e-4, fused=self.cuda or None)
        before = module_file.HOST_READS["count"]
        mode = "error" if self.cuda else None
        for i in range(3):
            if i == 1 and mode:
                torch.cuda.set_sync_debug_mode(mode)  # the first step reads the EMA count once
            try:
                out = module.objective.loss_with_diagnostics(module.backbone, x0, None, generator=None)
                module.window.add_loss(out.loss.mean(), out.loss, out.t)
                out.loss.mean().backward()
                module.window.add_grad_norm(torch.nn.utils.get_total_norm(
                    [p.grad for p in module.backbone.parameters() if p.grad is not None]))
                opt.step()
                opt.zero_grad(set_to_none=True)
                module.ema.update(module.backbone)
            finally:
                if mode:
                    torch.cuda.set_sync_debug_mode(0)
        return {"host_reads_in_3_steps": module_file.HOST_READS["count"] - before,
                "sync_debug_mode": mode or "cpu (seam count only)"}

    def sharded(self):
        import torch.distributed as dist

        from lit_diffusion.distributed.fsdp2 import shard_module

        out = {}
        if not dist.is_initialized():
            store = dist.FileStore(tempfile.mktemp(), 1)
            dist.init_process_group("nccl" if self.cuda else "gloo", store=store, rank=0, world_size=1)
        preset, batch = self.size["dit"][0]
        net, shape = self.backbone("dit", preset)
        holder = torch.nn.Module()
        holder.backbone, holder.ema = net.to(self.device), EMA(net, decay=0.999).to(self.device)
        shard_module(holder, mixed_precision="bf16" if self.cuda else "none", activation_checkpointing=True)
        out[f"fsdp2 DiT-{preset}"] = self.train_steps(holder.backbone, shape, batch, self.size["steps"], compile=False,
                                                      ema=holder.ema)  # the EMA sharded like the model
        import importlib.util

        if not self.cuda:  # Lightning refuses DeepSpeed without CUDA: the same path with its default strategy
            out["fit, auto strategy (CPU stand-in for DeepSpeed)"] = self.fit_steps("auto")
            if importlib.util.find_spec("deepspeed"):  # and DeepSpeed itself on the CPU (the *_cpu presets)
                for stage in (2, 3):
                    out[f"deepspeed ZeRO-{stage} (CPU preset)"] = self.fit_steps(f"deepspeed_stage_{stage}_cpu")
        elif not importlib.util.find_spec("deepspeed"):
            out["deepspeed"] = {"skipped": "deepspeed is not installed"}
        else:
            for stage in (2, 3):
                out[f"deepspeed ZeRO-{stage}"] = self.fit_steps(f"deepspeed_stage_{stage}")
        return out

    def fit_steps(self, strategy: str) -> dict:
        """`lit-diffusion fit` of the digits DiT config (DiT-S/2 at 32x32 on CUDA, bf16) with this strategy in a
        child process: step time (time in fit / steps, start-up excluded) and the child's peak CUDA memory."""
        import subprocess

        steps = 4 if self.tiny else 40
        with tempfile.TemporaryDirectory() as tmp:
            shards, run = self.digits(Path(tmp)), Path(tmp) / "run"
            args = ["fit", "-c", str(REPO / "experiments/digits/dit.yaml"), "--data.train_shards", str(shards),
                    "--trainer.default_root_dir", str(run), "--trainer.strategy", strategy, "--trainer.max_steps",
                    str(steps), "--data.num_workers", "0", "--preview_every_n_steps", "0",
                    "--model.max_images", "100000000"]
            if not self.tiny:
                args += ["--trainer.precision", "bf16-mixed", "--data.batch_size", "256",
                         "--model.backbone.init_args.depth", "12", "--model.backbone.init_args.hidden_size", "384",
                         "--model.backbone.init_args.num_heads", "6"]  # DiT-S widths
            child = ("import sys, torch; from lit_diffusion.cli import main; code = main(sys.argv[1:]); "
                     "print('PEAK_BYTES', torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0); "
                     "sys.exit(code)")
            done = subprocess.run([sys.executable, "-c", child, *args], capture_output=True, text=True, cwd=REPO)
            if done.returncode != 0:
                raise RuntimeError(f"fit with strategy {strategy} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
            from lit_diffusion.runs import read_record

            info = read_record(run / "checkpoints" / "last.ckpt")  # a file, or DeepSpeed's folder
            peak = int(done.stdout.rsplit("PEAK_BYTES", 1)[1].split()[0])
            return {"steps": info.global_step, "step_ms": 1e3 * info.train_seconds / max(info.global_step, 1),
                    "peak_memory_gib": peak / 2**30}

    def memory(self):
        """Per-rank bytes of parameters, gradients, optimiser state and EMA under DDP, FSDP2, ZeRO-2 and ZeRO-3
        for DiT-S widths (--tiny: the debug DiT) on 2 CPU ranks, measured from the tensors each rank holds,
        next to the analytic bytes (benchmarks/strategy_memory.py); the table is printed."""
        import importlib.util

        import strategy_memory

        sizes = ["--hidden", "64", "--depth", "2", "--heads", "4"] if self.tiny else \
            ["--hidden", "384", "--depth", "12", "--heads", "6"]
        chosen = strategy_memory.STRATEGIES if importlib.util.find_spec("deepspeed") else ("DDP", "FSDP2")
        args = strategy_memory.parser().parse_args(["--world-size", "2", *sizes, "--strategies", *chosen])
        measured, n = strategy_memory.run(args)
        print(strategy_memory.table(measured, n, 2), flush=True)
        failed = {k: v["error"] for k, v in measured.items() if "error" in v}
        if failed:
            raise RuntimeError(f"memory measurement failed: {failed}")
        return {strategy: {f"{part}_mib": parts[part] / 2**20 for part in strategy_memory.PARTS} |
                {f"{part}_analytic_mib": want[part] / 2**20 for part in strategy_memory.PARTS}
                for strategy, parts in measured.items()
                for want in [strategy_memory.analytic(strategy, n, 2)]}

    def resume(self):
        """k steps + save + resume + k steps == 2k steps, in bf16 autocast (bitwise on the same device?)."""
        net, shape = self.backbone("dit", self.size["dit"][0][0])
        k = max(2, self.size["steps"] // 2)

        def run(model, opt, start, stop):
            objective = FlowMatching()
            for s in range(start, stop):
                g = torch.Generator(device=self.device).manual_seed(s)
                x0 = torch.randn(4, *shape, device=self.device, generator=g)
                with self.autocast():
                    loss = objective.loss(model, x0, None, generator=g).mean()
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

        def fresh():
            model = copy.deepcopy(net).to(self.device)
            return model, torch.optim.AdamW(model.parameters(), lr=1e-3, fused=self.cuda or None)

        a, opt_a = fresh()
        run(a, opt_a, 0, 2 * k)
        b, opt_b = fresh()
        run(b, opt_b, 0, k)
        with tempfile.TemporaryDirectory() as tmp:
            torch.save({"model": b.state_dict(), "opt": opt_b.state_dict()}, Path(tmp) / "k.pt")
            c, opt_c = fresh()
            state = torch.load(Path(tmp) / "k.pt", weights_only=False)
            c.load_state_dict(state["model"])
            opt_c.load_state_dict(state["opt"])
        run(c, opt_c, k, 2 * k)
        diff = max((p - q).abs().max().item() for p, q in zip(a.parameters(), c.parameters()))
        return {"steps": 2 * k, "bitwise": diff == 0.0, "max_difference": diff}

    def sampling(self):
        preset = "debug" if self.tiny else "B/2"
        net, shape = self.backbone("dit", preset)
        net = net.to(self.device).eval()
        objective, rows = FlowMatching(), {}
        noise = torch.randn(self.size["sample_batch"], *shape, device=self.device)
        with torch.no_grad():
            for nfe in self.size["nfe"]:
                with self.autocast():
                    objective.sample(net, noise, sampler="euler", nfe=nfe)
                self.sync()
                start = time.perf_counter()
                with self.autocast():
                    objective.sample(net, noise, sampler="euler", nfe=nfe)
                self.sync()
                rows[f"nfe{nfe}"] = {"images_per_s": noise.shape[0] / (time.perf_counter() - start)}
        return rows

    def loader(self):
        from lit_diffusion.data.datamodule import ShardDataModule

        with tempfile.TemporaryDirectory() as tmp:
            shards = self.digits(Path(tmp))
            workers = 0 if self.tiny else 4
            data = ShardDataModule(train_shards=str(shards), batch_size=4 if self.tiny else 256, num_workers=workers)
            data.setup("fit")
            net = DiT.from_preset("debug" if self.tiny else "S/2", in_channels=1, input_size=16 if self.tiny else 32,
                                  num_classes=10).to(self.device)
            objective, opt = FlowMatching(), torch.optim.AdamW(net.parameters(), lr=1e-4, fused=self.cuda or None)
            wait = total = 0.0
            it = iter(data.train_dataloader())
            steps = self.size["steps"] * 2
            for _ in range(steps):
                start = time.perf_counter()
                batch = next(it)
                x0 = batch["x"].to(self.device, non_blocking=True)
                got = time.perf_counter()
                with self.autocast():
                    loss = objective.loss(net, x0, None).mean()
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                self.sync()
                wait, total = wait + got - start, total + time.perf_counter() - start
            return {"workers": workers, "wait_ms_per_step": 1e3 * wait / steps, "step_ms": 1e3 * total / steps,
                    "fed": wait < 0.05 * total}

    def lightning(self):
        import lightning_vs_bare as lvb

        import statistics

        n1, n2, repeats = (1, 2, 1) if self.tiny else (20, 60, 3)
        with tempfile.TemporaryDirectory() as tmp:
            shards = lvb.digits(Path(tmp) / "digits16")
            measured = lvb.rounds(shards, "small", n1, n2, Path(tmp), self.device.type, repeats)
        # wall-clock ms/step, median over the rounds (a warm-up run per side first, alternating order)
        lit = statistics.median(r["lightning"][0] for r in measured)
        bare = statistics.median(r["bare"][0] for r in measured)
        return {"lightning_ms": lit, "bare_ms": bare, "ratio": statistics.median(
            r["lightning"][0] / r["bare"][0] for r in measured)}


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) < 300 else text[:300] + "..."


def markdown(results: dict) -> str:
    lines = ["| section | item | result |", "|---|---|---|"]
    for section, value in results.items():
        items = value.items() if isinstance(value, dict) else [("", value)]
        for item, v in items:
            if item == "trace":
                continue
            text = ", ".join(f"{k} {x:.4g}" if isinstance(x, float) else f"{k} {x}" for k, x in v.items()) \
                if isinstance(v, dict) else str(v)
            lines.append(f"| {section} | {item} | {text} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes on the CPU (CI)")
    parser.add_argument("--out", type=Path, default=Path("acceptance"))
    parser.add_argument("--only", default="", help="comma list of sections to run (default: all)")
    a = parser.parse_args(argv)
    bench = Bench(a.tiny)
    sections = ["peak", "train", "no_sync", "sharded", "memory", "resume", "sampling", "loader", "lightning"]
    chosen = [s for s in sections if not a.only or s in a.only.split(",")]
    methods = {"peak": bench.measure_peak}
    for name in chosen:
        bench.run(name, methods.get(name) or getattr(bench, name))
    a.out.mkdir(parents=True, exist_ok=True)
    meta = {"device": torch.cuda.get_device_name() if bench.cuda else "cpu", "torch": torch.__version__, "tiny": a.tiny}
    (a.out / "acceptance.json").write_text(json.dumps({"meta": meta, **bench.results}, indent=1, default=str))
    (a.out / "acceptance.md").write_text(f"Acceptance on {meta['device']} (torch {meta['torch']})\n\n" + markdown(bench.results))
    failed = [n for n, v in bench.results.items() if isinstance(v, dict) and "error" in v]
    print(f"wrote {a.out / 'acceptance.json'} and acceptance.md; failed sections: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
