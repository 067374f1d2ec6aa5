"""The README's cluster instructions, proven: a standalone master and worker on 127.0.0.1, two
stages through spark-submit with the code shipped as --py-files, output equal to local mode."""
import pytest

from demo import cluster as cluster_demo

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_spark_submit_on_a_standalone_cluster_equals_local_mode(warc_dir, tmp_path):
    warcs = sorted(str(p) for p in warc_dir.glob("*.warc.gz"))[:2]
    result = cluster_demo.main([*warcs, "--output", str(tmp_path / "cluster-demo")])
    assert result["identical"] == {"extract": True, "filter": True}
    probe, *stages = result["executors_per_application"]
    assert len(stages) == 2 and all(n >= 2 for n in [probe, *stages]), "two executors for each application"
    assert all(".zip/pipeline/" in code for code, *_ in result["imported_from"]), "executors run the shipped code"
    # Every executor has the compiled extractor's three modules. In this checkout's environment the
    # installed copies answer first (setuptools' editable finder); test_compiled proves the shipped ones
    # load where none is.
    assert all(len(modules) == 3 and all(m.endswith(".so") for m in modules)
               for _, *modules in result["imported_from"]), result["imported_from"]
    assert result["docs"]["extract"]["out"] > 0
