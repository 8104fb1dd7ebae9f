"""Stop rules for running trials (pruners) and fidelity schedules (schedulers).

Both are fed by the per-epoch reports of an estimator, as Optuna splits its samplers from its
pruners: a *pruner* decides whether one running trial should stop now; a *scheduler* decides
at which fidelity a proposal is evaluated and which finished trials are promoted to more.
"""
