"""Classical video de-raining baselines, one interface with the networks
(:mod:`rtderain.evaluation.methods`).

Every baseline is a callable ``method(frames) -> iterator of frames``: it takes the uint8
``(H, W, 3)`` RGB frames of ONE clip in order and yields one de-rained uint8 ``(H, W, 3)``
RGB frame per input, in order. Video baselines read temporal neighbours through a bounded
sliding window (:mod:`rtderain.evaluation.baselines.window`); on a one-frame clip (a single
image) the temporal ones return the input unchanged, while FastDeRain keeps its spatial priors.

Modules: ``simple`` (identity, temporal median), ``garg_nayar``, ``zhang``, ``fastderain``.
The registry of names is ``rtderain.evaluation.methods.METHODS``. Papers, parameters and checks:
``docs/evaluation.md``.
"""
