from kit.timing import PerfCounterClock, ProcessPeakTracker, load_average_1m


def test_perf_counter_clock_times_a_sleep():
    import time

    assert 0.009 < PerfCounterClock().time_call(lambda: time.sleep(0.01)) < 0.5


def test_process_peak_tracker_sees_an_allocation_after_reset():
    tracker = ProcessPeakTracker()
    big = bytearray(200 * 2**20)
    del big
    tracker.reset()
    baseline = tracker.peak_bytes()
    blob = bytearray(300 * 2**20)
    blob[::4096] = b"x" * len(blob[::4096])
    peak = tracker.peak_bytes()
    del blob
    assert peak - baseline > 250 * 2**20
    assert tracker.method in ("vmhwm", "psutil-sampler")


def test_load_average_is_non_negative():
    value = load_average_1m()
    assert value is None or value >= 0
