"""jointly.data: load and validate a party's table, write files atomically, make synthetic and demo data.

* :mod:`jointly.data.tables` -- ``load_table`` (CSV, Parquet) with precise ``DataError``\\ s
* :mod:`jointly.data.io` -- atomic writers (bytes, text, JSON, tables)
* :mod:`jointly.data.synthetic` -- deterministic id lists and customer tables
* :mod:`jointly.data.bundled` -- the small demo tables shipped with the package

This layer imports nothing from jointly except :mod:`jointly.errors`.
"""
