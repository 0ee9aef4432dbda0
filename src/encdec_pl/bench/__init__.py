"""Speed measurements: training throughput of three loops, packing jobs, and quality of the fast path.

- `python -m encdec_pl.bench`          the table: published loop vs conventional Lightning loop vs fast path
- `python -m encdec_pl.bench.packing`  aggregate images/s when 1, 2, 4, 8 jobs share one device
- `python -m encdec_pl.bench.quality`  fast path vs fp32 path at a fixed step budget, over seeds
"""
