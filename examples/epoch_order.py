#!/usr/bin/env python3
"""epoch_order.py: s3shard's epoch order and ShardedByS3Key cut, in plain Python.

This is the reference for docs/dataset.md ("The epoch order", "Distributions"):
any process, in any language, that follows these steps gets the same order and
the same shares as s3shard (tests/examples/epoch_order_test.c checks it against
the C library).

    epoch_order.py --n N [--seed S --epoch E] [--no-shuffle]
        prints the epoch order: the shard at each position, one per line.
    epoch_order.py --n N --seed S --epoch E --weights w0,w1,... --world W
        prints W+1 bounds: rank r reads positions [bounds[r], bounds[r+1]).
        The weights are the shards' weights in shard order (object counts or bytes).
"""
import argparse
import sys

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
EPOCH_SALT = 0x6A09E667F3BCC909


def mix64(z):
    """SplitMix64's output function."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def epoch_key(seed, epoch):
    """The generator key of (seed, epoch); both taken modulo 2^64."""
    return mix64((seed & MASK) ^ mix64((epoch & MASK) ^ EPOCH_SALT))


class CounterRng:
    """Word j (j = 1, 2, ...) is mix64(key + j * GOLDEN mod 2^64)."""

    def __init__(self, key):
        self.key = key
        self.ctr = 0

    def next(self):
        self.ctr += 1
        return mix64((self.key + self.ctr * GOLDEN) & MASK)

    def below(self, bound):
        """An unbiased draw in [0, bound): Lemire's multiply-and-reject."""
        m = self.next() * bound
        low = m & MASK
        if low < bound:
            t = ((1 << 64) - bound) % bound
            while low < t:
                m = self.next() * bound
                low = m & MASK
        return m >> 64


def epoch_order(n, shuffle, seed, epoch):
    """The shard at each position of the epoch: Fisher-Yates from the top."""
    perm = list(range(n))
    if not shuffle or n < 2:
        return perm
    rng = CounterRng(epoch_key(seed, epoch))
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def share_bounds(order, weights, world):
    """ShardedByS3Key: walking the order with C the weight before a shard and w
    its weight, the shard goes to rank floor((2C + w) * world / (2W)), capped
    at world - 1. Returns world + 1 bounds (positions)."""
    total = sum(weights)
    if total == 0:  # every shard empty: balance by count instead
        weights = [1] * len(weights)
        total = len(weights)
    bounds = [None] * (world + 1)
    nxt = 0
    c = 0
    for pos, shard in enumerate(order):
        w = weights[shard]
        r = min((2 * c + w) * world // (2 * total), world - 1)
        while nxt <= r:
            bounds[nxt] = pos
            nxt += 1
        c += w
    while nxt <= world:
        bounds[nxt] = len(order)
        nxt += 1
    return bounds


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="number of shards")
    ap.add_argument("--seed", type=int, default=0, help="ShuffleConfig.Seed")
    ap.add_argument("--epoch", type=int, default=0, help="epoch, from 0")
    ap.add_argument("--no-shuffle", action="store_true", help="no ShuffleConfig")
    ap.add_argument("--weights", help="comma-separated shard weights (count or bytes)")
    ap.add_argument("--world", type=int, help="world size, with --weights")
    a = ap.parse_args()
    order = epoch_order(a.n, not a.no_shuffle, a.seed, a.epoch)
    if a.weights is not None:
        weights = [int(x) for x in a.weights.split(",")] if a.weights else []
        if len(weights) != a.n or not a.world or a.world < 1:
            sys.exit("--weights needs n values and --world >= 1")
        print("\n".join(str(b) for b in share_bounds(order, weights, a.world)))
    else:
        sys.stdout.write("".join("%d\n" % p for p in order))


if __name__ == "__main__":
    main()
