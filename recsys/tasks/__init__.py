"""Lightning tasks of gatelab.recsys (registered in :mod:`gatelab.recsys.registry`).

* :mod:`.ctr`: :class:`~gatelab.recsys.tasks.ctr.CTRTask` (task ``ctr``): binary cross-entropy with
  FuxiCTR's regularisers and plateau learning-rate decay, AUC and logloss.
"""
