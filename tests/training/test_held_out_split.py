"""split_held_out(): deterministic by image id, every label with >= 2 images on both sides."""
from __future__ import annotations

import random

from connector.training import ImageRecord, split_held_out


def records(n=40, n_labels=5):
    rng = random.Random(1)
    out = []
    for i in range(n):
        labels = {0} if i % 2 else {rng.randrange(1, n_labels)}
        out.append(ImageRecord(100 + i, f"{i}.png", 64, 64, tuple((k, 1, 1, 10, 10) for k in labels)))
    # a rare label in exactly two images, a singleton label, and a negative image
    out.append(ImageRecord(500, "r1.png", 64, 64, ((5, 1, 1, 5, 5), (0, 1, 1, 9, 9))))
    out.append(ImageRecord(501, "r2.png", 64, 64, ((5, 1, 1, 5, 5),)))
    out.append(ImageRecord(502, "s.png", 64, 64, ((6, 1, 1, 5, 5),)))
    out.append(ImageRecord(503, "neg.png", 64, 64, ()))
    return out


def ids(rs):
    return [r.image_id for r in rs]


def test_deterministic_and_order_independent():
    rs = records()
    a = split_held_out(rs, 7)
    b = split_held_out(list(reversed(rs)), 7)
    assert ids(a[1]) == ids(split_held_out(rs, 7)[1])
    assert sorted(ids(a[1])) == sorted(ids(b[1])) and sorted(ids(a[0])) == sorted(ids(b[0]))
    assert ids(split_held_out(rs, 7, seed=3)[1]) != ids(a[1])  # the seed reshuffles


def test_partition_and_label_coverage():
    rs = records()
    train, held = split_held_out(rs, 7, fraction=0.2)
    assert sorted(ids(train) + ids(held)) == sorted(ids(rs))
    assert not set(ids(train)) & set(ids(held))
    assert abs(len(held) - round(0.2 * len(rs))) <= 3
    def labels(part):
        return {b[0] for r in part for b in r.boxes}
    for k in range(6):  # labels 0..5 have >= 2 images
        assert k in labels(train) and k in labels(held), k
    assert 6 in labels(train) and 6 not in labels(held)  # a single example stays in training
    assert ids(train) == [i for i in ids(rs) if i in set(ids(train))]  # input order kept


def test_tiny_sets():
    one = [ImageRecord(1, "a.png", 8, 8, ((0, 0, 0, 4, 4),))]
    assert split_held_out(one, 1) == (one, [])
    two = one + [ImageRecord(2, "b.png", 8, 8, ((0, 0, 0, 4, 4),))]
    train, held = split_held_out(two, 1)
    assert len(train) == 1 and len(held) == 1
