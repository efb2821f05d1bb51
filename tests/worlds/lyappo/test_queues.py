"""The task-level FIFO pipeline against hand-worked examples and conservation laws."""

import numpy as np

from splitrl.worlds.lyappo.queues import TaskPipeline


def _arrive(p, counts, cl, bits, ce, slot):
    shape = p.shape
    p.arrive(
        np.asarray(counts).reshape(shape),
        np.full(shape, float(cl)),
        np.full(shape, float(bits)),
        np.full(shape, float(ce)),
        slot,
    )


def test_fifo_order_partial_service_and_latency():
    p = TaskPipeline((1, 1))
    _arrive(p, [[2]], 10.0, 5.0, 4.0, slot=0)  # two tasks: 10 cycles, 5 bits, 4 cycles each
    np.testing.assert_array_equal(p.backlog()[:, 0, 0], [20.0, 0.0, 0.0])
    # slot 1: 15 cycles served -> first task done (moves to tx), second has 5 left
    done, lat = p.serve(np.array([15.0, 0, 0]).reshape(3, 1, 1), slot=1)
    assert done.sum() == 0
    np.testing.assert_array_equal(p.backlog()[:, 0, 0], [5.0, 5.0, 0.0])
    np.testing.assert_array_equal(p.num_tasks()[:, 0, 0], [1, 1, 0])
    # slot 2: finish the second locally, transmit 5 bits (first task reaches the edge)
    p.serve(np.array([5.0, 5.0, 0]).reshape(3, 1, 1), slot=2)
    np.testing.assert_array_equal(p.backlog()[:, 0, 0], [0.0, 5.0, 4.0])
    # slot 3: edge finishes the first task; it became available at slot 1, done at end of slot 3
    done, lat = p.serve(np.array([0.0, 5.0, 4.0]).reshape(3, 1, 1), slot=3)
    assert done[0, 0] == 1 and lat[0, 0] == 3.0
    done, lat = p.serve(np.array([0.0, 0.0, 4.0]).reshape(3, 1, 1), slot=4)
    assert done[0, 0] == 1 and lat[0, 0] == 4.0
    assert p.backlog().sum() == 0 and p.num_tasks().sum() == 0


def test_partition_routing_skips_empty_stages():
    p = TaskPipeline((1, 2))
    counts = np.array([[1, 1]])
    p.arrive(counts, np.array([[0.0, 7.0]]), np.array([[3.0, 0.0]]), np.array([[2.0, 0.0]]), slot=0)
    # service 0 (k = 0) goes straight to transmission; service 1 (k = K) is local only
    np.testing.assert_array_equal(p.backlog()[:, 0], [[0.0, 7.0], [3.0, 0.0], [0.0, 0.0]])
    done, _ = p.serve(np.array([[0.0, 7.0], [0.0, 0.0], [0.0, 0.0]]).reshape(3, 1, 2), slot=1)
    np.testing.assert_array_equal(done, [[0, 1]])  # the local-only task leaves after local


def test_work_is_conserved_and_capacity_grows():
    rng = np.random.default_rng(0)
    p = TaskPipeline((3, 2, 2))
    n_arrived = 0
    served_total = np.zeros(3)
    finished = 0
    for t in range(400):
        work = rng.uniform(0, 30, size=(3, 3, 2, 2))
        before = p.backlog()
        done, lat = p.serve(work, t)
        finished += done.sum()
        assert np.all(lat >= done)  # every finished task spent at least one slot
        served = np.minimum(work, before).reshape(3, -1).sum(-1)
        served_total += served
        counts = rng.poisson(0.8, size=(3, 2, 2))
        p.arrive(counts, np.full((3, 2, 2), 10.0), np.full((3, 2, 2), 8.0), np.full((3, 2, 2), 6.0), t)
        n_arrived += counts.sum()
        assert np.all(p.backlog() >= 0)
    # every task is finished or queued somewhere; every unit of work that entered a stage was
    # served there or is still queued there (a task enters stage s once it left stage s - 1)
    cnt = p.num_tasks().reshape(3, -1).sum(-1)
    assert n_arrived == finished + cnt.sum()
    entered = np.array([n_arrived, n_arrived - cnt[0], n_arrived - cnt[0] - cnt[1]]) * [10.0, 8.0, 6.0]
    np.testing.assert_allclose(entered, served_total + p.backlog().reshape(3, -1).sum(-1), rtol=1e-9)
    assert p.capacity > 8  # the backlog outgrew the initial lanes


def test_broadcast_copies_are_independent():
    p = TaskPipeline((1, 1))
    _arrive(p, [[1]], 10.0, 0.0, 0.0, 0)
    b = p.broadcast(3)
    assert b.shape == (3, 1, 1)
    b.serve(np.array([[5.0, 0, 0], [0, 0, 0], [10.0, 0, 0]]).T.reshape(3, 3, 1, 1), 1)
    np.testing.assert_array_equal(b.backlog()[0, :, 0, 0], [5.0, 10.0, 0.0])
    assert p.backlog()[0, 0, 0] == 10.0
