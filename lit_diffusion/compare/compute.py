"""Compute accounting of a comparison: the training FLOPs of one optimiser step of each objective, measured on
its real step (every forward, backward and JVP pass of the loss, a distillation teacher's forwards included) with
the same counter as the training log, and a budget in FLOPs turned into each objective's image budget.

Why measured per objective: the objectives cost very different compute per image (a consistency step adds a
target forward, distillation a teacher's ODE step, sCM and MeanFlow a JVP), so equal images are not equal
compute. The count covers matrix products, convolutions and attention (torch.utils.flop_counter), not
element-wise work or the optimiser: on these networks those are a small share. A distillation round whose
teacher is an earlier run's checkpoint (tune_from.teacher) is measured after training, with that teacher."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from lit_diffusion.compare.json_files import write_json_atomic
from lit_diffusion.compare.suite import ObjectiveEntry, Suite, SuiteError
from lit_diffusion.training.flops import step_flops


class FlopsUnmeasurable(SuiteError):
    """A budget in FLOPs for a step the counter sees no work in."""


@dataclass(frozen=True)
class StepCost:
    """The measured cost of one objective's training step on one rank's batch."""

    flops_per_step: float  # forward, backward, JVP and teacher passes of one step, one rank's batch
    batch_size: int  # images per rank per step

    @property
    def flops_per_image(self) -> float:
        return self.flops_per_step / self.batch_size


def module_from_fit_config(config: dict):
    """The DiffusionModule a fit config builds (teacher included), without a Trainer."""
    from jsonargparse import ArgumentParser

    from lit_diffusion.training.module import DiffusionModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(DiffusionModule, "model", fail_untyped=False)
    parsed = parser.parse_object({"model": config["model"]})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # jsonargparse < 4.49
    return instantiate(parsed).model


def probe_batch(shards: str, batch_size: int, conditional: bool) -> dict:
    """A batch of the dataset's shape (dataset.json beside the shards): random values, since FLOPs do not depend
    on them."""
    info = json.loads((Path(shards) / "dataset.json").read_text())
    shape = tuple(int(d) for d in info["shape"])
    g = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn((batch_size, *shape), generator=g).clamp(-1, 1)}
    if conditional:
        batch["label"] = torch.randint(0, max(int(info.get("num_classes") or 1), 1), (batch_size,), generator=g)
    return batch


def has_teacher(entry: ObjectiveEntry) -> bool:
    """Whether the entry's objective distils from the checkpoint it starts from (tune_from.teacher): its step
    can be measured only once that checkpoint exists."""
    return entry.tune_from is not None and entry.tune_from.teacher


def measure_step_cost(suite: Suite, entry: ObjectiveEntry) -> StepCost:
    """The FLOPs of one training step of this objective in this suite (its fit config, first seed). An entry with
    a teacher is built from its full config (the teacher read from its checkpoint), so that the teacher's forward
    passes, real training cost, are counted: call it once the run it is tuned from has trained."""
    from lit_diffusion.compare.train import fit_config

    seed = suite.seeds[0]  # FLOPs do not depend on the image budget
    budget = None if has_teacher(entry) else suite.max_images  # None: the full config, start checkpoint included
    config = fit_config(suite, entry, seed, max_images=budget)
    batch_size = int(config["data"]["batch_size"])
    with torch.random.fork_rng(devices=[]):  # building the module draws initial weights: leave the caller's RNG
        module = module_from_fit_config(config)
        flops = step_flops(module, probe_batch(suite.shards, batch_size, bool(config["model"].get("conditional"))))
    return StepCost(flops, batch_size)


def images_for_flops(max_flops: float, cost: StepCost, objective: str) -> int:
    """The image budget that spends `max_flops` training FLOPs (all ranks together) at this cost per image;
    training stops at the first step boundary at or past it, so it overshoots by less than one global batch."""
    if cost.flops_per_step <= 0:
        raise FlopsUnmeasurable(
            f"budget.max_flops: the FLOP counter (torch.utils.flop_counter) counted 0 FLOPs in a training step of "
            f"{objective!r}: its backbone's work is invisible to it (a compiled or custom kernel, or ops the counter "
            "has no formula for), so FLOPs cannot be turned into a number of steps. Give the suite budget.max_images "
            "or budget.max_time instead, or run the backbone eagerly with standard torch ops")
    return max(1, math.floor(max_flops / cost.flops_per_image))


def resolve_budgets(suite: Suite, log=print) -> tuple[Suite, dict[str, StepCost]]:
    """Measure every objective's step cost, and under a FLOP budget turn it into each objective's image budget:
    (the suite with those budgets, the costs). The costs are written to OUT/compute.json."""
    costs, images = {}, {}
    for entry in suite.objectives:
        if has_teacher(entry):  # tune_from needs an image budget, so no image budget waits on this measurement
            log(f"[{entry.name}] training step: measured once its teacher ({entry.tune_from.objective}'s checkpoint) "
                "has trained")
            continue
        costs[entry.name] = cost = measure_step_cost(suite, entry)
        line = f"[{entry.name}] training step: {cost.flops_per_step / 1e9:.3f} GFLOP ({cost.batch_size} images)"
        if suite.max_flops:
            images[entry.name] = images_for_flops(suite.max_flops, cost, entry.name)
            line += f"; budget {suite.max_flops:.3g} FLOPs = {images[entry.name]:,} images"
        log(line)
    _write_costs(suite, costs)
    return replace(suite, objective_images=images), costs


def measure_teacher_steps(suite: Suite, costs: dict[str, StepCost], log=print) -> dict[str, StepCost]:
    """`costs` with the step cost of every entry with a teacher added (after training, when each teacher's
    checkpoint exists; resolve_budgets leaves them out), in suite order; OUT/compute.json rewritten with them."""
    costs = dict(costs)
    for entry in suite.objectives:
        if has_teacher(entry) and entry.name not in costs:
            costs[entry.name] = cost = measure_step_cost(suite, entry)
            log(f"[{entry.name}] training step: {cost.flops_per_step / 1e9:.3f} GFLOP ({cost.batch_size} images, "
                f"the teacher's forward passes included)")
    _write_costs(suite, costs)
    return costs


def _write_costs(suite: Suite, costs: dict[str, StepCost]) -> None:
    out = Path(suite.out)
    out.mkdir(parents=True, exist_ok=True)
    measured = {e.name: asdict(costs[e.name]) for e in suite.objectives if e.name in costs}
    write_json_atomic(measured, out / "compute.json")
