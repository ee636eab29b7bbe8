"""The 2-D head-to-head as a suite: typed entries naming objectives of the registry (objectives.OBJECTIVES), each
with its options, its samplers x NFEs, its network and where it starts from; compare/toy2d.py runs them in a plain
loop (training.plain_loop). Entries run in order; an entry may use an earlier one's trained objective and network
(a teacher, a start for tuning, a model to reflow)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lit_diffusion.objectives import OBJECTIVES, ConsistencyCurriculum


@dataclass(frozen=True)
class ToyNet:
    """The entry's network: the suite's MLP, optionally with a second time input and t embedded at another scale
    (the JVP objectives embed t at 1, Lu & Song 2024, Sec. 4.1), optionally inside an INDM flow."""

    second_time: bool = False
    time_scale: float = 1000.0
    flow: str | None = None  # "vector" (a RealNVP flow, INDM) or "identity" (the same diffusion without a flow)


@dataclass(frozen=True)
class ToyEntry:
    name: str  # the row's label
    objective: str  # a name in objectives.OBJECTIVES
    evals: tuple[tuple[str, int], ...]  # (sampler, NFE) pairs scored
    options: Callable = field(default=lambda run: {}, compare=False)  # run (toy2d.ToyRun) -> objective kwargs
    net: ToyNet = ToyNet()
    train: bool = True  # False: the untrained network itself is the row (the reference)
    baseline: str | None = None  # also score the network it starts from under this label, at its first eval
    tune_from: str | None = None  # start from this earlier entry's trained network (its steps count on top)
    reflow_of: str | None = None  # fine-tune this earlier entry's network, with its objective, on its own pairs
    likelihood: bool = False  # also the exact NLL of held-out data (probability-flow ODE)

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"toy2d entry {self.name!r}: unknown objective {self.objective!r}; known: {sorted(OBJECTIVES)}")
        if self.net.flow not in (None, "vector", "identity"):
            raise ValueError(f"toy2d entry {self.name!r}: flow must be 'vector', 'identity' or None, got {self.net.flow!r}")


ODE = (("euler", 1), ("euler", 4), ("heun", 33))
CONSISTENCY = (("consistency", 1), ("consistency", 2))
JVP_NET = ToyNet(time_scale=1.0)  # measured on this toy: sCM 1-step SW2 0.41 with t at 1000 -> 0.07 at 1

TOY_SUITE: tuple[ToyEntry, ...] = (
    ToyEntry("ddpm", "ddpm", (("ddim", 4), ("dpm++2m", 32)),
             lambda run: {"prediction": "v", "discrete": False, "schedule": "cosine"}),
    ToyEntry("flow_matching", "flow_matching", ODE),
    ToyEntry("rectified_flow", "rectified_flow", ODE),
    ToyEntry("consistency_training", "consistency_training", CONSISTENCY,
             lambda run: {"sigma_max": 20.0, "curriculum": ConsistencyCurriculum(total_steps=run.cfg.steps, s0=10,
                                                                                  s1=160)}),
    ToyEntry("untrained (reference)", "flow_matching", (("euler", 4),), train=False),
    # reflow: pairs from the 1-rectified flow, then the 2-rectified flow fine-tuned on them
    ToyEntry("2-rectified_flow", "rectified_flow", ODE, reflow_of="rectified_flow"),
    # consistency distillation from the flow-matching teacher
    ToyEntry("consistency_distillation", "consistency_distillation", CONSISTENCY,
             lambda run: {"teacher": run.objectives["flow_matching"], "teacher_net": run.nets["flow_matching"],
                          "teacher_sampler": "heun", "num_scales": 18, "sigma_max": 20.0}),
    # the few-step family: MeanFlow and sCM from scratch, ECT tuned from the flow-matching run, each against the
    # network it starts from
    ToyEntry("mean_flow", "mean_flow", (("mean_flow", 1), ("mean_flow", 2)), net=ToyNet(True, 1.0),
             baseline="mean_flow (untrained)"),
    ToyEntry("continuous_consistency", "continuous_consistency", CONSISTENCY,  # its default warm-up: a fifth of the run
             net=JVP_NET, baseline="continuous_consistency (untrained)"),
    ToyEntry("consistency_tuning", "consistency_tuning", CONSISTENCY, lambda run: {"base": run.objectives["flow_matching"]},
             baseline="consistency_tuning (init: flow_matching)", tune_from="flow_matching"),
    # shortcut models (Frans et al. 2024): the step size d is the second time input
    ToyEntry("shortcut", "shortcut", (("shortcut", 1), ("shortcut", 2), ("shortcut", 4)), net=ToyNet(True),
             baseline="shortcut (untrained)"),
    # progressive distillation (Salimans & Ho 2022): rounds 8 -> 4 -> 2 -> 1 DDIM steps from the DDPM (v, cosine)
    # run, each student from its teacher's weights, each baseline its teacher at the student's steps
    *(ToyEntry(f"progressive_distillation ({n // 2})", "progressive_distillation", (("ddim", n // 2),),
               lambda run, n=n, source=source: {"teacher": run.objectives[source], "teacher_net": run.nets[source],
                                                "teacher_steps": n},
               baseline=f"  its teacher at {n // 2}", tune_from=source)
      for n, source in ((8, "ddpm"), (4, "progressive_distillation (4)"), (2, "progressive_distillation (2)"))),
    # INDM (Kim et al. 2022): a flow around the VP diffusion against the same diffusion with the identity flow
    ToyEntry("indm", "indm", (("euler", 100), ("dpm++2m", 32)), net=ToyNet(flow="vector"), likelihood=True),
    ToyEntry("linear diffusion (indm, identity flow)", "indm", (("euler", 100), ("dpm++2m", 32)),
             net=ToyNet(flow="identity"), likelihood=True),
    # PFGM++ (Xu et al. 2023) at the config's D = 128 (EDM is D -> infinity); D against NFE: benchmarks/pfgmpp_robustness.py
    ToyEntry("pfgmpp", "pfgmpp", (("euler", 1), ("euler", 2), ("euler", 4), ("heun", 33))),
)
