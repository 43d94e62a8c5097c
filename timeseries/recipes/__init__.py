"""Paper tables of gatelab.timeseries (``gatelab repro <table>``): :mod:`.gateformer` (table ``gateformer``)
and :mod:`.tft` (table ``tft``), one module per table."""
