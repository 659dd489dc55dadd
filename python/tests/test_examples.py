"""The PyTorch examples (python/examples): the point-cloud classifier with ddn's robust pooling, in one process
and under torch.distributed; and the distributed-gradient check: two DDP processes, each given half of a batch,
end up with the gradients one process computes on the whole batch."""
import os
import sys

import pytest
import torch

EXAMPLES = os.environ.get("DDN_PYTHON_EXAMPLES",
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
sys.path.insert(0, EXAMPLES)  # spawned processes inherit sys.path, so they import it too
import pointcloud  # noqa: E402

TINY = ["--synthetic", "6", "--points", "16", "--test-per-class", "2", "--batch-size", "8", "--outliers", "0,0.5",
        "--json"]


def test_two_processes_give_the_gradients_of_one_process_on_the_whole_batch():
    size, points, seed = 8, 16, 3
    single = pointcloud.single_process_gradients(size, points, seed)
    ranks = pointcloud.distributed_gradients(2, size, points, seed)
    assert len(ranks) == 2
    for rank, grads in enumerate(ranks):
        assert len(grads) == len(single)
        for g, s in zip(grads, single):
            assert torch.allclose(g, s, rtol=1e-10, atol=1e-13), f"rank {rank}: {(g - s).abs().max()}"
    # The comparison has teeth: half the batch alone gives other gradients.
    model = pointcloud.gradient_model(seed)
    x, y = pointcloud.gradient_batch(size, points, seed)
    torch.nn.functional.cross_entropy(model(x[:size // 2]), y[:size // 2]).backward()
    assert max((p.grad - s).abs().max().item() for p, s in zip(model.parameters(), single)) > 1e-3
    assert all(s.abs().max() > 0 for s in single)


def test_the_classifier_trains_with_ddn_pooling():
    result = pointcloud.main(TINY + ["--epochs", "2", "--pooling", "huber"])
    r = result["impls"]["ddn"]
    assert len(r["epoch_seconds"]) == 2 and set(r["accuracy"]) == {"0.0", "0.5"}
    assert all(0 <= a <= 1 for a in r["accuracy"].values())


def test_the_classifier_trains_under_ddp():
    result = pointcloud.main(TINY + ["--epochs", "1", "--ddp", "2"])
    assert result["world_size"] == 2 and len(result["epoch_seconds"]) == 1


@pytest.mark.skipif(not os.environ.get("DDN_REFERENCE_ROOT"),
                    reason="DDN_REFERENCE_ROOT is not set: the side-by-side run with the reference library is skipped")
def test_the_classifier_side_by_side_with_the_reference():
    result = pointcloud.main(TINY + ["--epochs", "1", "--impl", "both"])
    assert set(result["impls"]) == {"ddn", "reference"}
