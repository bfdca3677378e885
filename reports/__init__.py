"""Tables and figures rebuilt from run directories alone: one module per table or figure (``reports/tables/``),
registered in :data:`reports.registry.TABLES`; the shared renderers (:mod:`reports.render`), claims
(:mod:`reports.claims`) and statistics (:mod:`reports.stats`); ``harness report`` / ``reproduce``
(:mod:`reports.cli`)."""
