"""What the suite file alone cannot tell, checked before anything trains: whether each entry's objective (from
its composed fit config) can use the samplers the entry asks for. Today one sampler needs more than the common
prediction contract: MeanFlow's one-step sampler walks the objective's average-velocity network u(z, r, t)."""
from __future__ import annotations

from lit_diffusion.compare.suite import Suite, SuiteError, objective_class

# sampler -> (the objective method it calls, what that is in words)
SAMPLER_NEEDS = {"mean_flow": ("average_velocity", "an average-velocity network u(z, r, t), i.e. the MeanFlow "
                                                   "objective (experiments/objectives/mean_flow.yaml)")}


def check_samplers(suite: Suite) -> None:
    """SuiteError naming the suite file and `objectives[I].samplers.KEY` when the entry's objective cannot run it."""
    from lit_diffusion.compare.train import fit_config

    for i, entry in enumerate(suite.objectives):
        needs = [(key, SAMPLER_NEEDS[key.partition(":")[0]]) for key in entry.samplers
                 if key.partition(":")[0] in SAMPLER_NEEDS]
        if not needs:
            continue
        cls = objective_class(fit_config(suite, entry, suite.seeds[0], max_images=suite.max_images))
        for key, (method, what) in needs:
            if cls is not None and not hasattr(cls, method):
                raise SuiteError(f"{suite.source}: objectives[{i}].samplers.{key}: objective {entry.name!r} "
                                 f"({cls.__name__}) cannot use sampler {key.partition(':')[0]!r}, which needs {what}; "
                                 "pick another sampler for this entry (euler, heun, ...)")
