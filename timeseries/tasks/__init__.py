"""Lightning tasks, losses and metrics of gatelab.timeseries: :mod:`.tft` (the TFT task, registered ``tft``)
and :mod:`.metrics` (quantile loss, q-risk, point MAE). Gateformer / iTransformer train with the harness's
generic task."""
