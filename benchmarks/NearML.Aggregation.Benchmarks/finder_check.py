#!/usr/bin/env python3
"""Independent check of the SecAgg+ parameter finder (NearML.Aggregation.SecAggParameters.Find).

Recomputes (k, t) with exact rational arithmetic (Python integers and fractions, no floating point in any decision),
from the bounds derived in docs/secure-aggregation.md ("SecAgg+ graph and parameter finder"):

  n clients on a randomly permuted Harary graph H(n, k); at most c = floor(gamma*n) corrupt and d = floor(delta*n)
  dropped clients, chosen without knowledge of the permutation; r = c + d removed clients.

  security, threshold:    n * P[Hyp(n-1, c, k) >= t]              <= 2^-(sigma+1)   (semi-honest server, Google's table)
  security, split view:   n * P[Hyp(n-1, c, k) >= 2t - k]         <= 2^-(sigma+1)   (malicious server, t > k/2: what
                                                                                      SecAggParameters.Find uses)
  security, connectivity: n(n-k-1)/2 * C(r, k) / C(n, k)           <= 2^-(sigma+1)   (two disjoint gaps of k/2)
  correctness:            n * P[Hyp(n-1, d, k) >= k - t + 1]       <= 2^-eta

  k = smallest even degree in [2, n-2] for which some t in [max(2, ...), k] meets all three; t = the smallest such t.

Usage: python3 finder_check.py              # prints the table and checks it against Google's published values
       python3 finder_check.py --malicious  # also prints the malicious-server (k, t) that NearML's finder returns
       python3 finder_check.py --csv N,..   # also prints (k, t) for other cohort sizes
Exit code 0 when every published row is reproduced, 1 otherwise. Standard library only.
"""
from fractions import Fraction
from math import comb
import sys

# Published (Google federated-compute, semi-honest server, sigma = 40, eta = 20): (n, gamma, delta) -> (k, t).
GOOGLE = {
    (100, 0.05, 0.05): (12, 6),
    (1000, 0.05, 0.05): (30, 17),
    (10000, 0.05, 0.05): (34, 20),
    (100000, 0.05, 0.05): (36, 21),
    (1000000, 0.05, 0.05): (38, 22),
    (100, 0.33, 0.05): (34, 29),
    (1000, 0.33, 0.05): (78, 60),
    (100, 0.05, 0.33): (28, 6),
    (1000, 0.05, 0.33): (72, 24),
    (10000, 0.05, 0.33): (86, 29),
    (10000, 0.33, 0.05): (92, 70),
    (100, 0.33, 0.33): (68, 34),
    (1000, 0.33, 0.33): (286, 150),
    (100, 0.33, 0.0): (26, 25),
    (1000, 0.0, 0.33): (38, 2),
    (100, 0.0, 0.0): (2, 2),
}

# Rows where this finder deliberately differs: Google clamps t to >= 2 after its correctness check, so for n = 10,
# delta = 0.33 it accepts k = 4, t = 2 although a client then keeps one surviving neighbour with probability 1/21.
DIFFERENT = {
    (10, 0.05, 0.33): ((4, 2), (6, 2)),
}


def count(fraction, n):
    """Largest integer count not above fraction*n (fractions given as decimal strings are exact)."""
    f = Fraction(str(fraction))
    return (f * n).numerator // (f * n).denominator


def hyp_tail(population, successes, draws, x):
    """P[X >= x] for X ~ Hypergeometric(population, successes, draws), exact."""
    if x <= 0:
        return Fraction(1)
    hi = min(successes, draws)
    if x > hi:
        return Fraction(0)
    num = sum(comb(successes, i) * comb(population - successes, draws - i) for i in range(x, hi + 1))
    return Fraction(num, comb(population, draws))


def disconnect_bound(n, k, removed):
    """Union bound on P[removed set contains two disjoint, non-adjacent runs of k/2 ring positions]."""
    if k > removed or n - k - 1 <= 0:
        return Fraction(0)
    return Fraction(n * (n - k - 1), 2) * Fraction(comb(removed, k), comb(n, k))


def find(n, gamma, delta, sigma=40, eta=20, malicious=False):
    c, d = count(gamma, n), count(delta, n)
    sec = Fraction(1, 2 ** (sigma + 1))
    cor = Fraction(1, 2 ** eta)
    for k in range(2, n - 1, 2):
        if disconnect_bound(n, k, c + d) > sec:
            continue
        for t in range(max(2, k // 2 + 1) if malicious else 2, k + 1):
            if n * hyp_tail(n - 1, c, k, 2 * t - k if malicious else t) > sec:
                continue  # too few shares needed: t corrupt neighbours too likely; try a larger t
            if n * hyp_tail(n - 1, d, k, k - t + 1) > cor:
                break  # t is the smallest secure threshold; larger t only worsens correctness
            return k, t
    return None


def main(argv):
    rows = sorted(GOOGLE.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0]))
    bad = 0
    print("| n | gamma | delta | recomputed k / t | Google k / t |")
    print("|---|---|---|---|---|")
    for (n, g, dl), (gk, gt) in rows:
        k, t = find(n, g, dl)
        ok = (k, t) == (gk, gt)
        bad += 0 if ok else 1
        print(f"| {n:,} | {g} | {dl} | {k} / {t} | {gk} / {gt} |{'' if ok else ' MISMATCH'}")
    for (n, g, dl), (gkt, ours) in DIFFERENT.items():
        got = find(n, g, dl)
        ok = got == ours
        bad += 0 if ok else 1
        print(f"| {n:,} | {g} | {dl} | {got[0]} / {got[1]} | {gkt[0]} / {gkt[1]} (differs on purpose) |{'' if ok else ' UNEXPECTED'}")
    if "--malicious" in argv:
        print()
        print("| n | gamma | delta | malicious-server k / t (None: complete graph) |")
        print("|---|---|---|---|")
        for (n, g, dl) in sorted(set(GOOGLE) | {(100, 0.05, 0.1), (1000, 0.05, 0.1)}, key=lambda r: (r[1], r[2], r[0])):
            if n > 100000:
                continue  # exact tails at n = 10^6 take minutes
            got = find(n, g, dl, malicious=True)
            print(f"| {n:,} | {g} | {dl} | {got[0]} / {got[1]} |" if got else f"| {n:,} | {g} | {dl} | None |")
    if "--csv" in argv:
        for n in (int(s) for s in argv[argv.index("--csv") + 1].split(",")):
            print(n, find(n, 0.05, 0.05))
    print("all published rows reproduced" if bad == 0 else f"{bad} rows differ")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
