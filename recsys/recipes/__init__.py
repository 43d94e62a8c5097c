"""Paper tables of gatelab.recsys as data (registered in :mod:`gatelab.recsys.registry`).

* :mod:`.ctr`: the ``ctr`` table (:data:`~gatelab.recsys.recipes.ctr.CTR_TABLE`), its recipe
  (:data:`~gatelab.recsys.recipes.ctr.CTR_RECIPE`) and ``ctr_config(model, dataset)``.
"""
