"""Connected components on Spark: large-star / small-star (Kiveris et al., "Connected Components in
MapReduce and Beyond", 2014). Each node ends labelled with the smallest node of its component;
nothing is gathered on one machine."""
from __future__ import annotations


def _large_star(edges):
    def emit(item):
        node, neighbours = item
        neighbours = set(neighbours)
        smallest = min(neighbours | {node})
        return [(v, smallest) for v in neighbours if v > node]

    both = edges.flatMap(lambda e: [(e[0], e[1]), (e[1], e[0])])
    return both.groupByKey().flatMap(emit).distinct()


def _small_star(edges):
    def emit(item):
        node, neighbours = item
        group = set(neighbours) | {node}
        smallest = min(group)
        return [(v, smallest) for v in group if v != smallest]

    oriented = edges.map(lambda e: (max(e), min(e)))
    return oriented.groupByKey().flatMap(emit).distinct()


def connected_components(edges, max_rounds: int = 100):
    """edges: RDD of (a, b) node pairs. Returns an RDD of (node, component label) for every node
    that has an edge; the label is the smallest node of the component."""
    current = edges.filter(lambda e: e[0] != e[1]).map(lambda e: (min(e), max(e))).distinct().cache()
    for _ in range(max_rounds):
        nxt = _small_star(_large_star(current)).cache()
        changed = nxt.subtract(current).count() + current.subtract(nxt).count()
        current.unpersist()
        current = nxt
        if not changed:
            break
    else:
        raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
    # After convergence every edge is (node, label) or (label, node) with label the smallest.
    labels = current.flatMap(lambda e: [(e[0], min(e)), (e[1], min(e))]).reduceByKey(min)
    return labels
