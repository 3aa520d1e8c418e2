"""imzML reading: bulk memory-mapped reads against pyimzml's getspectrum loop.

Run ``python benchmarks/bench_imzml.py`` (``--small`` for a quick check).
Prints three tables:

1. continuous file (2,000 spectra x 20,000 m/z, float32): ``read_imzml``
   against ``np.stack([p.getspectrum(i)[1] for i in ...])``;
2. processed file (2,000 spectra, 5,000 peaks each at their own m/z):
   ``read_imzml(n_bins=...)`` against a ``getspectrum`` + ``np.histogram``
   loop, with the binning throughput in peaks per second;
3. peak traced memory of ``iter_imzml`` streaming the continuous file in
   chunks, against the file size and a full ``read_imzml``.

The files are generated in a temporary folder and deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np

# this checkout's package, whatever else is installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _timing import best_of  # noqa: E402  (benchmarks/ is on the path)


def _write_continuous(path, n, L, rng):
    from sklearn_relevance.ims import write_imzml

    X = rng.random((n, L), dtype=np.float32)
    side = int(np.ceil(np.sqrt(n)))
    coords = np.column_stack([np.arange(n) % side + 1, np.arange(n) // side + 1])
    write_imzml(path, X, coords, np.linspace(2000, 10000, L))
    return X


def _write_processed(path, n, k, rng):
    from pyimzml.ImzMLWriter import ImzMLWriter

    side = int(np.ceil(np.sqrt(n)))
    with ImzMLWriter(path, mode="processed", mz_dtype=np.float64,
                     intensity_dtype=np.float32) as w:
        for i in range(n):
            mz = np.sort(rng.uniform(2000, 10000, k))
            w.addSpectrum(mz, rng.random(k, dtype=np.float32), (i % side + 1, i // side + 1))


def _parser(path):
    from pyimzml.ImzMLParser import ImzMLParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ImzMLParser(path)


def _pyimzml_loop(path, parser=None):
    p = parser or _parser(path)
    try:
        return np.stack([p.getspectrum(i)[1] for i in range(len(p.coordinates))])
    finally:
        if parser is None:
            p.m.close()


def _pyimzml_binned(path, n_bins, parser=None):
    p = parser or _parser(path)
    spectra = [p.getspectrum(i) for i in range(len(p.coordinates))]
    if parser is None:
        p.m.close()
    lo = min(m[0] for m, _ in spectra)
    hi = max(m[-1] for m, _ in spectra)
    edges = np.linspace(lo, hi, n_bins + 1)
    return np.stack([np.histogram(m, edges, weights=s.astype(np.float64))[0]
                     for m, s in spectra])


def _ours_data_only(path, dtype=np.float32, **kwargs):
    """Our read after parsing: the bulk read of every spectrum (binning included).

    The file is opened lazily once (``read_imzml(lazy=True)``: the parse and
    the m/z axis, for ``n_bins`` one read of every spectrum's first and
    last m/z), as pyimzML's parser is made once for its side; the timed call
    reads all rows (``LazySpectra.read()``).
    """
    from sklearn_relevance.ims import read_imzml

    X = read_imzml(path, lazy=True, dtype=dtype, **kwargs).X
    return X.read


def _row(name, ours, peer, extra=""):
    print(f"{name:<44} {ours:>9.3f} {peer:>12.3f} {peer / ours:>8.1f}x {extra}")


def main(argv=None):
    from sklearn_relevance.ims import iter_imzml, read_imzml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a 200 x 2,000 quick run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n, L, k, n_bins = (200, 2000, 500, 500) if args.small else (2000, 20000, 5000, 2000)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        cont = os.path.join(tmp, "continuous.imzML")
        proc = os.path.join(tmp, "processed.imzML")
        t = time.perf_counter()
        X = _write_continuous(cont, n, L, rng)
        _write_processed(proc, n, k, rng)
        print(f"generated files in {time.perf_counter() - t:.1f} s "
              f"(continuous .ibd {os.path.getsize(cont[:-6] + '.ibd') / 2**20:.0f} MiB)")

        read_imzml(cont)  # warm-up: imports and the page cache, for both readers
        print(f"\n{'case':<44} {'ours (s)':>9} {'pyimzml (s)':>12} {'ratio':>9}")
        print("-" * 72)
        t_ours, data = best_of(lambda: read_imzml(cont), args.repeat)
        t_peer, ref = best_of(lambda: _pyimzml_loop(cont), args.repeat)
        assert np.array_equal(data.X, ref) and np.array_equal(data.X, X)
        _row(f"continuous {n} x {L}: parse + read", t_ours, t_peer)
        parser = _parser(cont)
        t_ours, _ = best_of(_ours_data_only(cont), args.repeat)
        t_peer, _ = best_of(lambda: _pyimzml_loop(cont, parser), args.repeat)
        parser.m.close()
        _row(f"continuous {n} x {L}: read only", t_ours, t_peer)

        short = os.path.join(tmp, "short.imzML")
        n_short, L_short = (2000, 100) if args.small else (20000, 200)
        _write_continuous(short, n_short, L_short, rng)
        parser = _parser(short)
        t_ours, data = best_of(_ours_data_only(short), args.repeat)
        t_peer, ref = best_of(lambda: _pyimzml_loop(short, parser), args.repeat)
        parser.m.close()
        assert np.array_equal(data, ref)
        _row(f"continuous {n_short} x {L_short}: read only", t_ours, t_peer)

        t_ours, data = best_of(lambda: read_imzml(proc, n_bins=n_bins, dtype=np.float64),
                               args.repeat)
        t_peer, ref = best_of(lambda: _pyimzml_binned(proc, n_bins), args.repeat)
        assert np.allclose(data.X, ref, rtol=1e-9, atol=1e-9)
        _row(f"processed {n} x {k} -> {n_bins}: parse + bin", t_ours, t_peer)
        parser = _parser(proc)
        t_ours, _ = best_of(_ours_data_only(proc, np.float64, n_bins=n_bins), args.repeat)
        t_peer, _ = best_of(lambda: _pyimzml_binned(proc, n_bins, parser), args.repeat)
        parser.m.close()
        _row(f"processed {n} x {k} -> {n_bins}: bin only", t_ours, t_peer,
             f"({n * k / t_ours / 1e6:.0f} M peaks/s)")

        chunk = max(n // 20, 1)
        gen = iter_imzml(cont, chunk_size=chunk)
        tracemalloc.start()
        for part in gen:
            del part
        peak_stream = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        tracemalloc.start()
        read_imzml(cont)
        peak_full = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        size = os.path.getsize(cont[:-6] + ".ibd")
        print(f"\n{'streaming reader':<38} {'peak (MiB)':>10} {'file (MiB)':>12} {'ratio':>9}")
        print("-" * 72)
        print(f"{f'iter_imzml, chunks of {chunk} spectra':<38} {peak_stream / 2**20:>10.1f} "
              f"{size / 2**20:>12.1f} {peak_stream / size:>8.3f}x  "
              f"(chunk {chunk * L * 4 / 2**20:.1f} MiB)")
        print(f"{'read_imzml (whole file)':<38} {peak_full / 2**20:>10.1f} "
              f"{size / 2**20:>12.1f} {peak_full / size:>8.3f}x")


if __name__ == "__main__":
    main()
