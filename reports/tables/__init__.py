"""The paper's tables and figures, one module each: its spec (which rows, from which runs), its renderer and its
claims, registered in :data:`reports.registry.TABLES` on import. A figure with panels registers one table per
panel under one group (``figure2``: ``figure2a``, ``figure2b``, ``figure2c``).

Importing this package registers them all, in the paper's order, which is the report's. ``docs/adding-a-table.md``
says how to add one.
"""

from reports.tables import table1, table2, table3, table4, table5, table6  # noqa: F401
from reports.tables import figure2, figure3, figure4, figure5, figure6, figure7  # noqa: F401
