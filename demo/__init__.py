"""What shows webweave working without the internet: `make demo` (run.py) and `make cluster-demo`
(cluster.py), the loopback image server that stands in for the web (image_server.py), and the real
pages of ../shared/data as WARCs, documents and training shards for the demo, the benchmarks and the
tests (samples.py). The pipeline itself never imports this package."""
