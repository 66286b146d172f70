"""Layer tables read in chunks: a resumed run's reads leave out rows a later session wrote again,
so a pass can yield fewer rows than the table counts. Those rows used to be np.empty memory
(garbage ratios, a cast warning on stderr in `diagnose` of a resumed run); they are NaN."""
from __future__ import annotations

import numpy as np

from trainspect.analysis.advisor.tables import Table


def _short_table(n_rows=10, yielded=6, poison=1e30):
    values = np.arange(n_rows * 3, dtype=np.float32).reshape(n_rows, 3)

    def blocks(a, b, rows):
        yield np.arange(a, min(b, yielded)), values[a:min(b, yielded)]

    scratch = np.full((n_rows, 3), poison, np.float32)   # leave garbage where np.empty may land
    del scratch
    return Table(lambda a, b: (np.arange(a, b), values[a:b]), n_rows, ["a", "b", "c"], blocks=blocks), values


def test_rows_a_pass_never_yielded_are_nan_not_leftover_memory():
    table, values = _short_table()
    got = table.columns([0, 2])
    assert got.shape == (10, 2)
    np.testing.assert_array_equal(got[:6], values[:6][:, [0, 2]])
    assert np.isnan(got[6:]).all()
