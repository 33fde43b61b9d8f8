"""Activation statistics of one ``site.layer``: mergeable moments, stored beside the part.

What a part holds for each captured tensor (``stats.<site>.<layer>.<stat>``):

==========  =========  ==============================================================
``count``   I64 [1]    tokens the statistics cover (the part's rows)
``mean``    F64 [D]    mean vector
``m2``      F64 [D]    sum of squared deviations from the mean (variance = m2 / count)
``norm``    F64 [1]    mean L2 norm of a token's vector
``maxabs``  F32 [D]    max |x| per unit of the vector
``topnorm`` F32 [K]    the K largest token norms, largest first (0 past ``count``)
``toprow``  I64 [K]    their rows in the part (-1 past ``count``)
==========  =========  ==============================================================

Merging is exact up to rounding (Chan et al.'s pairwise update), so statistics of parts,
units or a whole store are merged from the stored ones, never recomputed from the vectors.
Needs the ``tensors`` extra (numpy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from arcx_store import layout

STATS = ("count", "mean", "m2", "norm", "maxabs", "topnorm", "toprow")
TOP_K = 8


@dataclass(frozen=True)
class Moments:
    """Statistics of ``count`` vectors of width D. ``top_ids`` [K, m] labels the largest-norm
    tokens (a part stores m = 1: the row; a merge over parts prepends what tells them apart)."""

    count: int
    mean: np.ndarray  # f64 [D]
    m2: np.ndarray  # f64 [D]
    norm: float  # mean L2 norm
    maxabs: np.ndarray  # f32 [D]
    top_norm: np.ndarray  # f32 [K], descending, 0 where unused
    top_ids: np.ndarray  # i64 [K, m], -1 where unused

    @classmethod
    def empty(cls, d: int, k: int = TOP_K, m: int = 1) -> Moments:
        return cls(
            0,
            np.zeros(d),
            np.zeros(d),
            0.0,
            np.zeros(d, np.float32),
            np.zeros(k, np.float32),
            np.full((k, m), -1, np.int64),
        )

    @classmethod
    def of(cls, x: np.ndarray, k: int = TOP_K) -> Moments:
        """The statistics of rows ``x`` [n, D], computed directly (the reference)."""
        x64 = np.asarray(x, np.float64)
        n, d = x64.shape
        if n == 0:
            return cls.empty(d, k)
        norms = np.linalg.norm(x64, axis=1)
        order = np.argsort(-norms, kind="stable")[:k]
        top = np.zeros(k, np.float32)
        ids = np.full((k, 1), -1, np.int64)
        top[: len(order)] = norms[order]
        ids[: len(order), 0] = order
        mean = x64.mean(axis=0)
        return cls(
            n,
            mean,
            ((x64 - mean) ** 2).sum(axis=0),
            float(norms.mean()),
            np.abs(x64).max(axis=0).astype(np.float32),
            top,
            ids,
        )

    @property
    def variance(self) -> np.ndarray:
        return self.m2 / self.count if self.count else np.zeros_like(self.m2)

    def relabel(self, prefix: int) -> Moments:
        """The same statistics with ``prefix`` prepended to every used top id."""
        col = np.where(self.top_ids[:, :1] >= 0, prefix, -1)
        return Moments(
            self.count,
            self.mean,
            self.m2,
            self.norm,
            self.maxabs,
            self.top_norm,
            np.concatenate([col, self.top_ids], axis=1),
        )

    def merge(self, other: Moments) -> Moments:
        """The statistics of both sets of vectors (Chan's parallel update)."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        norm = (self.norm * self.count + other.norm * other.count) / n
        k = len(self.top_norm)
        norms = np.concatenate([self.top_norm, other.top_norm])
        ids = np.concatenate([self.top_ids, other.top_ids])
        used = ids[:, 0] >= 0
        order = np.flatnonzero(used)[np.argsort(-norms[used], kind="stable")][:k]
        top = np.zeros(k, np.float32)
        top_ids = np.full((k, ids.shape[1]), -1, np.int64)
        top[: len(order)] = norms[order]
        top_ids[: len(order)] = ids[order]
        return Moments(
            n, mean, m2, float(norm), np.maximum(self.maxabs, other.maxabs), top, top_ids
        )

    def to_tensors(self, site: str, layer: int) -> dict[str, np.ndarray]:
        """The part's tensors for these statistics (``top_ids`` must be part rows, m = 1)."""
        if self.top_ids.shape[1] != 1:
            raise ValueError("a part stores one id per top token (its row)")
        values = {
            "count": np.array([self.count], np.int64),
            "mean": np.asarray(self.mean, np.float64),
            "m2": np.asarray(self.m2, np.float64),
            "norm": np.array([self.norm], np.float64),
            "maxabs": np.asarray(self.maxabs, np.float32),
            "topnorm": np.asarray(self.top_norm, np.float32),
            "toprow": np.asarray(self.top_ids[:, 0], np.int64),
        }
        return {layout.stats_name(site, layer, k): v for k, v in values.items()}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, np.ndarray], site: str, layer: int) -> Moments:
        """Read them back; KeyError when the part has no statistics for ``site.layer``."""
        t = {k: tensors[layout.stats_name(site, layer, k)] for k in STATS}
        return cls(
            int(t["count"][0]),
            np.asarray(t["mean"], np.float64),
            np.asarray(t["m2"], np.float64),
            float(t["norm"][0]),
            np.asarray(t["maxabs"], np.float32),
            np.asarray(t["topnorm"], np.float32),
            np.asarray(t["toprow"], np.int64)[:, None],
        )


def stats_tensor_names(site: str, layer: int) -> list[str]:
    return [layout.stats_name(site, layer, k) for k in STATS]


def part_stats_bytes(d_model: int) -> int:
    """Bytes one part's statistics of one site.layer take (what ``to_tensors`` stores)."""
    return sum(t.nbytes for t in Moments.empty(d_model).to_tensors("s", 0).values())
